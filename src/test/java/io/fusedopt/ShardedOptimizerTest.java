package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A sharded step equals the unsharded step bit for bit (params on every rank, each tensor's states
 * and master weights on its owner), at world sizes 1, 2, 3 and 8, on both CPU backends, with
 * tensors of uneven sizes (one of two chunks), groups of different algorithms (Muon's matrices
 * whole), clipping by the global norm, a step skipped for a non-finite gradient, 16-bit params
 * with master weights, dynamic loss scaling, and every elementwise variant; per-rank memory is the
 * unsharded memory divided among the ranks; bad input fails on every rank, before any update.
 * The ranks are threads of one JVM ({@link LocalCommunicator}).
 */
class ShardedOptimizerTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final int STEPS = 3;

    /** A tensor of the model: its group, name, shape and param format. */
    record Spec(int group, String name, long[] shape, Precision precision) {
        long length() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }
    }

    /** One optimizer's setup: its builder's options, its groups' configurations, its tensors. */
    record Model(UnaryOperator<DeviceOptimizer.Builder> options, List<OptimizerConfig> groups, List<Spec> tensors) {}

    /** Uneven sizes (one tensor of two chunks), AdamW, Muon (matrices, one transposed) and Lion, and a bf16 param with master weights. */
    static Model mixedModel(UnaryOperator<DeviceOptimizer.Builder> options) {
        List<Spec> tensors = new ArrayList<>();
        long[] lengths = {1, 7, 300, (1 << 16) + 5, 4096, 1000, 33, 2};
        for (int i = 0; i < lengths.length; i++) {
            tensors.add(new Spec(0, "adamw." + i, new long[] {lengths[i]}, Precision.FP32));
            // Between float32 tensors: its launch batch (the mixed one) is not its place in the registration order.
            if (i == 2) tensors.add(new Spec(0, "adamw.bf16", new long[] {513}, Precision.BF16));
        }
        tensors.add(new Spec(1, "muon.wide", new long[] {6, 20}, Precision.FP32));
        tensors.add(new Spec(1, "muon.tall", new long[] {24, 5}, Precision.FP32));
        tensors.add(new Spec(2, "lion.a", new long[] {77}, Precision.FP32));
        tensors.add(new Spec(2, "lion.b", new long[] {4, 50}, Precision.FP32));
        return new Model(options, List.of(Adam.adamW().optLearningRate(1e-2).build(), Muon.builder().optLearningRate(0.02).build(),
                Lion.builder().optLearningRate(1e-3).build()), tensors);
    }

    private static float[] gradient(Spec s, int step) {
        float[] g = Scenario.gaussian(new Random(31L * s.name().hashCode() + step), (int) s.length(), 1f);
        if (step == 1 && s.name().equals("adamw.2")) g[3] = Float.NaN; // skipped under SKIP_STEP
        return g;
    }

    /** Every param, master and state as bits, by name: params from this rank, the rest from what it owns. */
    private static Map<String, int[]> bits(List<Spec> tensors, Map<String, TensorBuffer> params, DeviceOptimizer local) {
        Map<String, int[]> out = new LinkedHashMap<>();
        for (Spec s : tensors) out.put(s.name(), raw(params.get(s.name()).toArray()));
        for (ParamGroup g : local.groups()) {
            for (Parameter p : g.parameters()) {
                p.masterWeights().ifPresent(m -> out.put(p.name() + "/master", raw(m.toArray())));
                for (StateKind k : p.stateKinds()) out.put(p.name() + "/" + k.stateName(), raw(p.state(k).toArray()));
            }
        }
        return out;
    }

    private static int[] raw(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) bits[i] = Float.floatToRawIntBits(values[i]);
        return bits;
    }

    /** What a test does with an optimizer before or after the steps. */
    interface Hook<O> {
        void accept(O optimizer) throws Exception;
    }

    /** The model stepped unsharded. */
    static Map<String, int[]> unsharded(Backend backend, Model model) throws Exception {
        return unsharded(backend, model, 0, STEPS, o -> {}, o -> {});
    }

    /** The model's steps [from, to) unsharded, {@code before} run after the registration, {@code after} after the steps. */
    static Map<String, int[]> unsharded(Backend backend, Model model, int from, int to, Hook<DeviceOptimizer> before,
                                        Hook<DeviceOptimizer> after) throws Exception {
        try (DeviceOptimizer opt = model.options().apply(DeviceOptimizer.builder(model.groups().get(0)).optBackend(backend)).build()) {
            List<ParamGroup> groups = new ArrayList<>();
            for (OptimizerConfig c : model.groups()) groups.add(opt.addGroup(c));
            Tensors tensors = Tensors.register(model, opt::allocate, (s, p, g) -> groups.get(s.group()).add(s.name(), p, g, s.shape()));
            before.accept(opt);
            tensors.step(model, from, to, opt::step);
            after.accept(opt);
            return bits(model.tensors(), tensors.params(), opt);
        }
    }

    /** A run's params and gradients by name. */
    private record Tensors(Map<String, TensorBuffer> params, Map<String, TensorBuffer> grads) {
        interface Allocator {
            TensorBuffer allocate(long length, Precision precision);
        }

        interface Adder {
            void add(Spec spec, TensorBuffer param, TensorBuffer grad);
        }

        /** Every tensor of the model allocated, its param set from its name, and added. */
        static Tensors register(Model model, Allocator allocator, Adder adder) {
            Tensors t = new Tensors(new LinkedHashMap<>(), new LinkedHashMap<>());
            for (Spec s : model.tensors()) {
                TensorBuffer p = allocator.allocate(s.length(), s.precision()), g = allocator.allocate(s.length(), s.precision());
                p.copyFrom(Scenario.gaussian(new Random(s.name().hashCode()), (int) s.length(), 0.5f));
                adder.add(s, p, g);
                t.params().put(s.name(), p);
                t.grads().put(s.name(), g);
            }
            return t;
        }

        /** Steps [from, to): each step's gradients, then {@code step}. */
        void step(Model model, int from, int to, Runnable step) {
            for (int t = from; t < to; t++) {
                for (Spec s : model.tensors()) grads().get(s.name()).copyFrom(gradient(s, t));
                step.run();
            }
        }
    }

    /** The model stepped on {@code worldSize} ranks (threads): each rank's bits. */
    private static List<Map<String, int[]>> sharded(Backend backend, Model model, int worldSize) throws Exception {
        return sharded(backend, model, worldSize, 0, STEPS, o -> {}, o -> {});
    }

    /** The model's steps [from, to) on {@code worldSize} ranks, with hooks as {@link #unsharded(Backend, Model, int, int, Hook, Hook)}. */
    private static List<Map<String, int[]>> sharded(Backend backend, Model model, int worldSize, int from, int to,
                                                    Hook<ShardedOptimizer> before, Hook<ShardedOptimizer> after) throws Exception {
        List<LocalCommunicator> world = LocalCommunicator.world(worldSize, TIMEOUT);
        return onEveryRank(worldSize, rank -> runRank(model.options().apply(DeviceOptimizer.builder(model.groups().get(0))
                .optBackend(backend)), world.get(rank), model, from, to, before, after));
    }

    /** One rank of a sharded run of the model: its optimizer built from {@code builder} over {@code communicator}; its bits. */
    static Map<String, int[]> runRank(DeviceOptimizer.Builder builder, Communicator communicator, Model model, int from, int to,
                                      Hook<ShardedOptimizer> before, Hook<ShardedOptimizer> after) throws Exception {
        return runRank(builder, communicator, model, from, to, before, after, false);
    }

    /** As {@link #runRank(DeviceOptimizer.Builder, Communicator, Model, int, int, Hook, Hook)}, the steps replays of a capture when {@code captured}. */
    static Map<String, int[]> runRank(DeviceOptimizer.Builder builder, Communicator communicator, Model model, int from, int to,
                                      Hook<ShardedOptimizer> before, Hook<ShardedOptimizer> after, boolean captured) throws Exception {
        try (ShardedOptimizer opt = ShardedOptimizer.create(builder, communicator)) {
            List<ShardedOptimizer.Group> groups = new ArrayList<>();
            for (OptimizerConfig c : model.groups()) groups.add(opt.addGroup(c));
            Tensors tensors = Tensors.register(model, opt::allocate, (s, p, g) -> groups.get(s.group()).add(s.name(), p, g, s.shape()));
            before.accept(opt);
            if (captured) {
                try (ShardedOptimizer.ShardedStepGraph graph = opt.captureStep()) {
                    tensors.step(model, from, to, graph::replay);
                }
            } else {
                tensors.step(model, from, to, opt::step);
            }
            after.accept(opt);
            return bits(model.tensors(), tensors.params(), opt.local());
        }
    }

    /** What each rank does, by rank. */
    interface PerRank<T> {
        T run(int rank) throws Exception;
    }

    /** {@code work} on {@code worldSize} ranks, each on its own thread; the results by rank. */
    static <T> List<T> onEveryRank(int worldSize, PerRank<T> work) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(worldSize);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < worldSize; r++) {
                int rank = r;
                futures.add(pool.submit(() -> work.run(rank)));
            }
            List<T> results = new ArrayList<>();
            for (Future<T> f : futures) results.add(f.get());
            return results;
        } finally {
            pool.shutdownNow();
        }
    }

    /** What a rank does with its communicator. */
    private interface RankWork<T> {
        T run(Communicator communicator) throws Exception;
    }

    /** {@code work} on every rank of {@code world}, each on its own thread; the results by rank. */
    private static <T> List<T> onEveryRank(List<LocalCommunicator> world, RankWork<T> work) throws Exception {
        return onEveryRank(world.size(), rank -> work.run(world.get(rank)));
    }

    /** Every rank's params equal the unsharded ones, and the ranks' states together are exactly the unsharded states. */
    static void assertShardedEqualsUnsharded(Map<String, int[]> expected, List<Map<String, int[]>> ranks, List<Spec> tensors) {
        Map<String, int[]> states = new LinkedHashMap<>();
        for (int r = 0; r < ranks.size(); r++) {
            for (Map.Entry<String, int[]> e : ranks.get(r).entrySet()) {
                boolean param = tensors.stream().anyMatch(s -> s.name().equals(e.getKey()));
                if (param) {
                    assertArrayEquals(expected.get(e.getKey()), e.getValue(), "rank " + r + ": param " + e.getKey());
                } else {
                    assertTrue(states.put(e.getKey(), e.getValue()) == null, e.getKey() + " is owned by two ranks");
                }
            }
        }
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            if (tensors.stream().anyMatch(s -> s.name().equals(e.getKey()))) continue;
            assertArrayEquals(e.getValue(), states.get(e.getKey()), e.getKey() + " (its owner's)");
        }
        assertEquals(expected.size() - tensors.size(), states.size(), "states and master weights");
    }

    @ParameterizedTest(name = "{0}, world size {1}")
    @CsvSource({"CPU, 1", "CPU, 2", "CPU, 3", "CPU, 8", "CPU_FAST, 2", "CPU_FAST, 3", "CPU_FAST, 8"})
    void shardedStepsEqualTheUnshardedStepBitForBit(Backend backend, int worldSize) throws Exception {
        Model model = mixedModel(b -> b.optMaxGradNorm(0.5).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP));
        assertShardedEqualsUnsharded(unsharded(backend, model), sharded(backend, model, worldSize), model.tensors());
    }

    /** On the CPU backends a captured sharded step replays as a step. */
    @Test
    void capturedStepsReplayAsSteps() throws Exception {
        Model model = mixedModel(b -> b.optMaxGradNorm(0.5).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP));
        List<LocalCommunicator> world = LocalCommunicator.world(3, TIMEOUT);
        assertShardedEqualsUnsharded(unsharded(Backend.CPU, model), onEveryRank(3, rank -> runRank(model.options().apply(
                DeviceOptimizer.builder(model.groups().get(0)).optBackend(Backend.CPU_FAST)), world.get(rank), model, 0, STEPS,
                o -> {}, o -> {}, true)), model.tensors());
    }

    /** Dynamic loss scaling: the scale's backoff after the non-finite step is every rank's, as the unsharded one's. */
    @Test
    void dynamicLossScalingFollowsTheGlobalVerdict() throws Exception {
        Model model = mixedModel(b -> b.optNonFinitePolicy(NonFinitePolicy.SKIP_STEP)
                .optDynamicLossScaling(DynamicLossScaling.builder().optInitialScale(1).build()));
        assertShardedEqualsUnsharded(unsharded(Backend.CPU, model), sharded(Backend.CPU, model, 3), model.tensors());
    }

    /** Every elementwise variant, one group each, two tensors per group, at world size 3, with clipping. */
    @Test
    void everyVariantShardsBitForBit() throws Exception {
        List<OptimizerConfig> groups = new ArrayList<>(Variants.elementwise().values());
        List<Spec> tensors = new ArrayList<>();
        for (int g = 0; g < groups.size(); g++) {
            tensors.add(new Spec(g, "g" + g + ".a", new long[] {37 + g}, Precision.FP32));
            tensors.add(new Spec(g, "g" + g + ".b", new long[] {3, 5}, Precision.FP32));
        }
        Model model = new Model(b -> b.optMaxGradNorm(1.0), groups, tensors);
        assertShardedEqualsUnsharded(unsharded(Backend.CPU, model), sharded(Backend.CPU, model, 3), tensors);
    }

    /** More ranks than tensors: the ranks that own none still step (and exchange) with the others. */
    @Test
    void ranksWithoutTensorsStepAlong() throws Exception {
        Model model = new Model(b -> b.optMaxGradNorm(0.5), List.of(Adam.adamW().build()),
                List.of(new Spec(0, "a", new long[] {10}, Precision.FP32), new Spec(0, "b", new long[] {20}, Precision.FP32)));
        assertShardedEqualsUnsharded(unsharded(Backend.CPU, model), sharded(Backend.CPU, model, 4), model.tensors());
    }

    /**
     * Each rank's memory (its states; the params and gradients are the caller's host arrays) is
     * the unsharded optimizer's divided by the world size for equal tensors, and within the largest
     * tensor's states of that for uneven ones.
     */
    @ParameterizedTest(name = "world size {0}")
    @CsvSource({"1", "2", "4", "8"})
    void eachRankHoldsItsShareOfTheStates(int worldSize) throws Exception {
        long[] equal = new long[16];
        java.util.Arrays.fill(equal, 1000);
        long[] uneven = {5000, 10, 1234, 999, 64, 7000, 3, 300, 2500, 1};
        for (long[] lengths : List.of(equal, uneven)) {
            long unshardedBytes;
            try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU).build()) {
                ParamGroup g = opt.addGroup();
                for (int i = 0; i < lengths.length; i++) {
                    g.add("t" + i, opt.wrapHost(new float[(int) lengths[i]]), opt.wrapHost(new float[(int) lengths[i]]));
                }
                unshardedBytes = opt.ownedBytes();
            }
            long largest = java.util.Arrays.stream(lengths).max().orElse(0) * 2 * Float.BYTES; // AdamW: two fp32 states
            List<Long> perRank = onEveryRank(LocalCommunicator.world(worldSize, TIMEOUT), c -> {
                try (ShardedOptimizer opt = ShardedOptimizer.create(DeviceOptimizer.builder(Adam.adamW().build())
                        .optBackend(Backend.CPU), c)) {
                    ShardedOptimizer.Group g = opt.addGroup();
                    for (int i = 0; i < lengths.length; i++) {
                        g.add("t" + i, opt.local().wrapHost(new float[(int) lengths[i]]), opt.local().wrapHost(new float[(int) lengths[i]]));
                    }
                    return opt.ownedBytes();
                }
            });
            assertEquals(unshardedBytes, perRank.stream().mapToLong(Long::longValue).sum(), "the ranks' states are the unsharded states");
            for (long bytes : perRank) {
                if (lengths == equal) assertEquals(unshardedBytes / worldSize, bytes, "an equal share: " + perRank);
                else assertTrue(bytes <= unshardedBytes / worldSize + largest, bytes + " bytes on one rank: " + perRank);
            }
        }
    }

    /** Registrations that differ: every rank fails at the first step with the same message, and nothing changed. */
    @Test
    void differentRegistrationsFailOnEveryRankBeforeAnyUpdate() throws Exception {
        List<String> messages = onEveryRank(LocalCommunicator.world(3, TIMEOUT), c -> {
            try (ShardedOptimizer opt = ShardedOptimizer.create(DeviceOptimizer.builder(Adam.adamW().build())
                    .optBackend(Backend.CPU), c)) {
                ShardedOptimizer.Group g = opt.addGroup();
                float[] a = {1, 2, 3, 4, 5, 6};
                float[] b = {1, 2, 3, 4, 5, 6};
                g.add("a", opt.local().wrapHost(a), opt.local().wrapHost(new float[] {1, 1, 1, 1, 1, 1}));
                if (c.rank() == 2) g.add("b", opt.local().wrapHost(b), opt.local().wrapHost(new float[6]), 3, 2);
                else g.add("b", opt.local().wrapHost(b), opt.local().wrapHost(new float[6]), 2, 3);
                IllegalStateException e = assertThrows(IllegalStateException.class, opt::step);
                assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, a, "nothing updated");
                assertEquals(0, opt.local().stepCount());
                return e.getMessage();
            }
        });
        assertTrue(messages.get(0).contains("rank 2 has 'group 0 tensor 'b': 6 elements, shape [3, 2]"), messages.get(0));
        assertTrue(messages.get(0).contains("where rank 0 has 'group 0 tensor 'b': 6 elements, shape [2, 3]"), messages.get(0));
        assertEquals(1, messages.stream().distinct().count(), "the same message on every rank: " + messages);
    }

    /** A rank that never reaches the step: the others fail with a clear error after the timeout, having changed nothing. */
    @Test
    void aMissingRankFailsTheOthersInsteadOfHanging() throws Exception {
        List<LocalCommunicator> world = LocalCommunicator.world(3, Duration.ofMillis(300));
        List<String> outcomes = onEveryRank(world, c -> {
            try (ShardedOptimizer opt = ShardedOptimizer.create(DeviceOptimizer.builder(Sgd.builder().optLearningRate(0.1).build())
                    .optBackend(Backend.CPU), c)) {
                ShardedOptimizer.Group g = opt.addGroup();
                float[] p = {1, 2, 3};
                for (int i = 0; i < 3; i++) g.add("t" + i, opt.local().wrapHost(i == 0 ? p : new float[3]), opt.local().wrapHost(new float[] {1, 1, 1}));
                if (c.rank() == 1) return "left";
                CommunicationException e = assertThrows(CommunicationException.class, opt::step);
                assertArrayEquals(new float[] {1, 2, 3}, p, "nothing updated");
                return e.getMessage();
            }
        });
        assertEquals("left", outcomes.get(1));
        for (int r : new int[] {0, 2}) {
            assertTrue(outcomes.get(r).startsWith("rank " + r + ":") || outcomes.get(r).startsWith("rank " + r + " "), outcomes.get(r));
        }
        assertTrue(outcomes.stream().anyMatch(m -> m.contains("waited PT0.3S at a collective for the other ranks")), outcomes.toString());
        CommunicationException later = assertThrows(CommunicationException.class, () -> world.get(0).allGather(new byte[0]));
        assertTrue(later.getMessage().contains("the world is broken"), later.getMessage());
    }

    @Test
    void badWorldsAreRefused() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> LocalCommunicator.world(0, TIMEOUT));
        assertEquals("the world size must be at least 1, got 0", zero.getMessage());
        assertThrows(IllegalArgumentException.class, () -> LocalCommunicator.world(2, Duration.ZERO));
        Communicator outOfRange = new Communicator() {
            @Override public int rank() { return 2; }
            @Override public int worldSize() { return 2; }
            @Override public byte[][] allGather(byte[] data) { throw new AssertionError("not called"); }
        };
        IllegalArgumentException rank = assertThrows(IllegalArgumentException.class,
                () -> ShardedOptimizer.create(DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU), outOfRange));
        assertEquals("the communicator's rank 2 is outside [0, 2)", rank.getMessage());
        try (ShardedOptimizer opt = ShardedOptimizer.create(DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU),
                LocalCommunicator.world(1, TIMEOUT).get(0))) {
            ShardedOptimizer.Group g = opt.addGroup();
            g.add("w", opt.local().wrapHost(new float[4]), opt.local().wrapHost(new float[4]));
            assertThrows(IllegalArgumentException.class, () -> g.add("w", opt.local().wrapHost(new float[4]), opt.local().wrapHost(new float[4])));
            assertThrows(IllegalArgumentException.class, () -> g.add("x", opt.local().wrapHost(new float[4]), opt.local().wrapHost(new float[3])));
            assertThrows(IllegalArgumentException.class, () -> g.add("y", opt.local().wrapHost(new float[4]), opt.local().wrapHost(new float[4]), 3, 2));
            assertEquals(0, opt.owner("w"));
            assertThrows(IllegalArgumentException.class, () -> opt.owner("x"), "nothing was registered by the refusals");
        }
    }

    /**
     * A rank refuses a tensor that it would not own as its owner refuses it (the checks that need no
     * registration of the owner's: the name, the buffers' lengths and formats, the shape), so that
     * no rank registers what another refused.
     */
    @Test
    void aRankRefusesWhatTheOwnerWouldRefuse() {
        DeviceOptimizer.Builder builder = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU).optStochasticRounding(7);
        try (ShardedOptimizer opt = ShardedOptimizer.create(builder, LocalCommunicator.world(2, TIMEOUT).get(0));
             DeviceOptimizer unsharded = builder.build()) {
            ShardedOptimizer.Group g = opt.addGroup();
            ParamGroup u = unsharded.addGroup();
            assertTrue(g.add("a", opt.allocate(8, Precision.BF16), opt.allocate(8, Precision.BF16)).isPresent());
            assertEquals(0, opt.owner("a"), "so the next tensor goes to rank 1, not this one");
            String longName = "n".repeat(Parameter.MAX_NAME_LENGTH + 1);
            TensorBuffer bf16 = opt.allocate(8, Precision.BF16), fp32 = opt.allocate(8, Precision.FP32);
            TensorBuffer uBf16 = unsharded.allocate(8, Precision.BF16), uFp32 = unsharded.allocate(8, Precision.FP32);
            List<Executable> sharded = List.of(() -> g.add(longName, bf16, opt.allocate(8, Precision.BF16)),
                    () -> g.add("fp32", fp32, opt.allocate(8, Precision.FP32)), () -> g.add("same", bf16, bf16));
            List<Executable> plain = List.of(() -> u.add(longName, uBf16, unsharded.allocate(8, Precision.BF16)),
                    () -> u.add("fp32", uFp32, unsharded.allocate(8, Precision.FP32)), () -> u.add("same", uBf16, uBf16));
            for (int i = 0; i < sharded.size(); i++) {
                String expected = assertThrows(IllegalArgumentException.class, plain.get(i)).getMessage();
                assertEquals(expected, assertThrows(IllegalArgumentException.class, sharded.get(i)).getMessage());
            }
            assertThrows(IllegalArgumentException.class, () -> opt.owner("fp32"), "nothing was registered by the refusals");
        }
    }

    /**
     * Two steps at world size 2, saved; the third step after loading that directory at world size
     * 3 and into an unsharded optimizer equals three unsharded steps bit for bit; and an unsharded
     * checkpoint after two steps resumes sharded at world size 3 likewise.
     */
    @Test
    void checkpointsResumeAtAnyWorldSize(@TempDir Path dir) throws Exception {
        Model model = mixedModel(b -> b.optMaxGradNorm(0.5).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP));
        Map<String, int[]> expected = unsharded(Backend.CPU, model);
        Path shards = dir.resolve("world-2");
        sharded(Backend.CPU, model, 2, 0, 2, o -> {}, o -> o.save(shards));
        assertShardedEqualsUnsharded(expected, sharded(Backend.CPU, model, 3, 2, STEPS, o -> o.load(shards), o -> {}),
                model.tensors());
        Map<String, int[]> fromShards = unsharded(Backend.CPU_FAST, model, 2, STEPS, o -> ShardedOptimizer.loadShards(o, shards), o -> {});
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            assertArrayEquals(e.getValue(), fromShards.get(e.getKey()), "unsharded, from the shards: " + e.getKey());
        }
        Path whole = dir.resolve("unsharded.safetensors");
        unsharded(Backend.CPU, model, 0, 2, o -> {}, o -> o.save(whole));
        assertShardedEqualsUnsharded(expected, sharded(Backend.CPU_FAST, model, 3, 2, STEPS, o -> o.load(whole), o -> {}),
                model.tensors());
    }

    /** A directory that lacks a rank's file: every rank refuses the load, and is as it was. */
    @Test
    void anIncompleteCheckpointIsRefusedOnEveryRank(@TempDir Path dir) throws Exception {
        Model model = mixedModel(b -> b);
        Path shards = dir.resolve("world-3");
        sharded(Backend.CPU, model, 3, 0, 1, o -> {}, o -> o.save(shards));
        java.nio.file.Files.delete(shards.resolve("rank-1-of-3.safetensors"));
        List<Map<String, int[]>> untouched = sharded(Backend.CPU, model, 2, 0, 0, o -> {}, o -> {});
        List<Map<String, int[]>> refused = sharded(Backend.CPU, model, 2, 0, 0, o -> {
            CheckpointException e = assertThrows(CheckpointException.class, () -> o.load(shards));
            assertTrue(e.getMessage().contains("rank-1-of-3.safetensors"), e.getMessage());
        }, o -> {});
        for (int r = 0; r < 2; r++) {
            for (Map.Entry<String, int[]> e : untouched.get(r).entrySet()) {
                assertArrayEquals(e.getValue(), refused.get(r).get(e.getKey()), "rank " + r + ": " + e.getKey());
            }
        }
    }
}
