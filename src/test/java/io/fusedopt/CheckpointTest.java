package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Safetensors;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints on the CPU backend: exact resume, the safetensors layout, atomic saves under I/O
 * errors, and refusal of damaged or mismatched files with nothing changed.
 */
class CheckpointTest {
    @TempDir
    Path dir;

    /** A small model: three tensors in two groups, of the given formats and policy. */
    static final class Model implements AutoCloseable {
        final DeviceOptimizer opt;
        final List<Parameter> params = new ArrayList<>();

        Model(Backend backend, OptimizerConfig config, Precision param, Precision state, long seed) {
            opt = DeviceOptimizer.builder(config).optBackend(backend).optStatePrecision(state)
                    .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
            ParamGroup a = opt.addGroup();
            ParamGroup b = opt.addGroup(config.withLearningRate(config.learningRate() / 3));
            Random random = new Random(seed);
            int[] sizes = {5, 70_001, 1};
            for (int i = 0; i < sizes.length; i++) {
                TensorBuffer p = opt.allocate(sizes[i], param);
                p.copyFrom(Scenario.gaussian(random, sizes[i], 1f));
                params.add((i == 1 ? b : a).add("layer" + i + "/weight", p, opt.allocate(sizes[i], param)));
            }
        }

        void steps(int from, int to) {
            for (int t = from; t < to; t++) {
                Random random = new Random(100 + t); // the gradient of step t, whatever the run
                for (Parameter p : params) {
                    float[] g = Scenario.gaussian(random, (int) p.length(), 1f);
                    if (t == 3 && p == params.get(0)) g[0] = Float.NaN; // a skipped step inside the saved history
                    p.grad().copyFrom(g);
                }
                if (t == 4) opt.groups().get(0).setLearningRate(opt.groups().get(0).config().learningRate() * 0.5);
                opt.step();
            }
        }

        List<float[]> snapshot() {
            List<float[]> out = new ArrayList<>();
            for (Parameter p : params) {
                out.add(p.param().toArray());
                p.masterWeights().ifPresent(m -> out.add(m.toArray()));
                for (StateKind k : p.stateKinds()) out.add(p.state(k).toArray());
            }
            return out;
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    static Stream<Object[]> cases() {
        return Stream.of(
                new Object[] {Adam.adamW().optLearningRate(1e-2).optAmsgrad(true).build(), Precision.FP32, Precision.FP32},
                new Object[] {Adam.builder().build(), Precision.BF16, Precision.BF16},
                new Object[] {Momentum.builder().setMomentum(0.9).optNesterov(true).build(), Precision.FP16, Precision.FP32},
                new Object[] {RmsProp.builder().optCentered(true).optMomentum(0.5).build(), Precision.FP32, Precision.BF16},
                new Object[] {Adagrad.builder().optLrDecay(0.01).build(), Precision.BF16, Precision.FP32});
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.MethodSource("cases")
    void resumingFromACheckpointEqualsAnUninterruptedRun(OptimizerConfig config, Precision param, Precision state)
            throws IOException {
        Path file = dir.resolve("opt.safetensors");
        List<float[]> uninterrupted;
        try (Model a = new Model(Backend.CPU, config, param, state, 1)) {
            a.steps(1, 7);
            a.opt.save(file);
            a.steps(7, 12);
            uninterrupted = a.snapshot();
            assertEquals(10, a.opt.stepCount());
        }
        try (Model b = new Model(Backend.CPU, config, param, state, 2)) { // other initial params: the load restores them
            b.opt.load(file);
            assertEquals(5, b.opt.stepCount());
            assertEquals(1, b.opt.lastStep().skippedSteps());
            assertEquals(b.opt.groups().get(0).config().learningRate(), config.learningRate() * 0.5, 1e-12);
            b.steps(7, 12);
            List<float[]> resumed = b.snapshot();
            for (int i = 0; i < resumed.size(); i++) CudaEquivalenceTest.assertBitEqual(uninterrupted.get(i), resumed.get(i), "tensor " + i);
            assertEquals(10, b.opt.stepCount());
        }
    }

    /** Save on one backend, load on the other, continue: equal to the uninterrupted CPU run, both ways. */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.MethodSource("cases")
    @org.junit.jupiter.api.Tag("gpu")
    void aCheckpointMovesBetweenBackends(OptimizerConfig config, Precision param, Precision state) throws IOException {
        GpuTests.assumeGpu();
        List<float[]> uninterrupted;
        Path fromCpu = dir.resolve("cpu.safetensors");
        Path fromCuda = dir.resolve("cuda.safetensors");
        try (Model a = new Model(Backend.CPU, config, param, state, 1); Model c = new Model(Backend.CUDA, config, param, state, 1)) {
            a.steps(1, 7);
            c.steps(1, 7);
            a.opt.save(fromCpu);
            c.opt.save(fromCuda);
            a.steps(7, 12);
            uninterrupted = a.snapshot();
        }
        for (Backend[] way : new Backend[][] {{Backend.CUDA, null}, {Backend.CPU, null}}) {
            Path file = way[0] == Backend.CUDA ? fromCpu : fromCuda;
            try (Model b = new Model(way[0], config, param, state, 2)) {
                b.opt.load(file);
                b.steps(7, 12);
                List<float[]> resumed = b.snapshot();
                for (int i = 0; i < resumed.size(); i++) {
                    CudaEquivalenceTest.assertBitEqual(uninterrupted.get(i), resumed.get(i), "loaded on " + way[0] + ", tensor " + i);
                }
            }
        }
    }

    /**
     * The longest name add() accepts saves and loads in every key it is part of (the longest state
     * name, a late add's tensor_step, a frozen flag); one character more is refused by add(), where
     * a name that long used to be accepted and saved, and refused only by load.
     */
    @Test
    void theLongestNameAddAcceptsSavesAndLoads() throws IOException {
        String longestState = "";
        for (StateKind k : StateKind.values()) if (k.stateName().length() > longestState.length()) longestState = k.stateName();
        assertTrue(("group_of." + "/" + longestState).length() + Parameter.MAX_NAME_LENGTH <= Safetensors.MAX_NAME_CHARS,
                "the longest key of the longest name fits the reader's limit");
        String longest = "w".repeat(Parameter.MAX_NAME_LENGTH);
        Adam amsgrad = Adam.builder().optAmsgrad(true).build(); // keeps max_exp_avg_sq, the longest state name
        byte[] saved;
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, amsgrad)) {
            ParamGroup group = opt.addGroup();
            group.add("first", opt.allocate(2), opt.allocate(2));
            opt.step();
            group.add(longest, opt.allocate(2), opt.allocate(2)).freeze(); // tensor_step.NAME and frozen.NAME
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> group.add(longest + "w", opt.allocate(2), opt.allocate(2)));
            assertTrue(e.getMessage().contains("parameter name must be at most " + Parameter.MAX_NAME_LENGTH + " characters")
                    && e.getMessage().contains("got " + (Parameter.MAX_NAME_LENGTH + 1)), e.getMessage());
            assertEquals(2, group.parameters().size(), "nothing registered");
            saved = opt.saveToBytes();
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, amsgrad)) {
            ParamGroup group = opt.addGroup();
            group.add("first", opt.allocate(2), opt.allocate(2));
            Parameter p = group.add(longest, opt.allocate(2), opt.allocate(2));
            opt.load(saved);
            assertEquals(0, p.stepCount());
            assertTrue(p.isFrozen());
            assertEquals(1, opt.stepCount());
        }
    }

    @Test
    void theFileIsSafetensorsWithTheDocumentedMetadata() throws IOException {
        Path file = dir.resolve("a.safetensors");
        try (Model m = new Model(Backend.CPU, Adam.builder().build(), Precision.BF16, Precision.FP32, 1)) {
            m.steps(1, 3);
            m.opt.save(file);
        }
        byte[] bytes = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        assertEquals(0, n % 8, "header padded to 8 bytes");
        String header = new String(bytes, 8, (int) n, java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"fusedopt-optimizer-state\",\"format_version\":\"1\""), header);
        for (String key : List.of("\"algorithm\":\"adam\"", "\"step\":\"2\"", "\"group.1.learningRate\"", "\"crc32c.layer1/weight/exp_avg\"",
                "\"layer1/weight/master\":{\"dtype\":\"F32\",\"shape\":[70001]", "\"layer0/weight/param\":{\"dtype\":\"BF16\"")) {
            assertTrue(header.contains(key), key + " in " + header);
        }
        Safetensors.Header parsed = Safetensors.parse("a", bytes.length, bytes, k -> java.util.Arrays.copyOfRange(bytes, 8, 8 + k));
        assertEquals(bytes.length - 8 - n, parsed.dataLength());
        assertEquals(3 + 1 * 3 + 2 * 3, parsed.entries().size(), "param, master, exp_avg, exp_avg_sq per tensor");
    }

    @Test
    void anIoErrorDuringASaveLeavesThePreviousCheckpointIntact() throws IOException {
        Path file = dir.resolve("opt.safetensors");
        try (Model m = new Model(Backend.CPU, Adam.builder().build(), Precision.FP32, Precision.FP32, 1)) {
            m.steps(1, 3);
            m.opt.save(file);
            byte[] before = Files.readAllBytes(file);
            m.steps(3, 5);
            for (long failAfter : new long[] {0, 10, 5000, 400_000}) {
                CheckpointException e = assertThrows(CheckpointException.class, () -> m.opt.save(file, failingAfter(failAfter)));
                assertTrue(e.getMessage().contains("No space left on device") && e.getMessage().contains("unchanged"), e.getMessage());
                assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(file)), "the old checkpoint is untouched");
                try (Stream<Path> files = Files.list(dir)) {
                    assertEquals(List.of(file), files.toList(), "no temporary file is left behind");
                }
            }
            m.opt.save(file); // and a good save still works afterwards
        }
        try (Model fresh = new Model(Backend.CPU, Adam.builder().build(), Precision.FP32, Precision.FP32, 1)) {
            fresh.opt.load(file);
            assertEquals(3, fresh.opt.stepCount(), "4 steps, the third skipped");
        }
    }

    /** A sink that fails like a full disk after {@code limit} bytes. */
    static Checkpoint.SinkFactory failingAfter(long limit) {
        return path -> {
            Checkpoint.Sink real = Checkpoint.FILES.open(path);
            return new Checkpoint.Sink() {
                long written;
                @Override public void write(ByteBuffer bytes) throws IOException {
                    if (written + bytes.remaining() > limit) throw new IOException("No space left on device");
                    written += bytes.remaining();
                    real.write(bytes);
                }
                @Override public void sync() throws IOException { real.sync(); }
                @Override public void close() throws IOException { real.close(); }
            };
        };
    }

    @Test
    void damagedFilesAreRefusedAndChangeNothing() throws IOException {
        Path good = dir.resolve("good.safetensors");
        try (Model m = new Model(Backend.CPU, Adam.builder().build(), Precision.BF16, Precision.FP32, 1)) {
            m.steps(1, 4);
            m.opt.save(good);
        }
        byte[] bytes = Files.readAllBytes(good);
        long headerEnd = 8 + ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        try (Model target = new Model(Backend.CPU, Adam.builder().build(), Precision.BF16, Precision.FP32, 7)) {
            target.steps(1, 2);
            List<float[]> before = target.snapshot();
            // truncation at every length class
            for (long length : new long[] {0, 1, 7, 8, 9, headerEnd / 2, headerEnd - 1, headerEnd, headerEnd + 1,
                    (headerEnd + bytes.length) / 2, bytes.length - 1}) {
                refused(target, before, java.util.Arrays.copyOf(bytes, (int) length), "truncated to " + length);
            }
            // every single-bit flip in the header, and flips spread over the data
            Random random = new Random(3);
            for (int i = 0; i < headerEnd; i++) {
                byte[] flipped = bytes.clone();
                flipped[i] ^= (byte) (1 << random.nextInt(8));
                refused(target, before, flipped, "bit flipped in header byte " + i);
            }
            for (int k = 0; k < 200; k++) {
                int i = (int) (headerEnd + random.nextInt((int) (bytes.length - headerEnd)));
                byte[] flipped = bytes.clone();
                flipped[i] ^= (byte) (1 << random.nextInt(8));
                refused(target, before, flipped, "bit flipped in data byte " + i);
            }
            // a header that claims more data than exists, and an absurd header length
            byte[] longer = bytes.clone();
            ByteBuffer.wrap(longer).order(ByteOrder.LITTLE_ENDIAN).putLong(0, bytes.length);
            assertTrue(refused(target, before, longer, "header longer than the file").contains("truncated"));
            ByteBuffer.wrap(longer).order(ByteOrder.LITTLE_ENDIAN).putLong(0, Long.MAX_VALUE);
            assertTrue(refused(target, before, longer, "absurd header").contains("absurd"));
            byte[] appended = java.util.Arrays.copyOf(bytes, bytes.length + 4);
            assertTrue(refused(target, before, appended, "trailing bytes").contains("data bytes"));
            assertEquals(1, target.opt.stepCount(), "nothing changed");
        }
    }

    @Test
    void mismatchedOptimizersAreRefusedWithTheReason() throws IOException {
        Path file = dir.resolve("adam.safetensors");
        try (Model m = new Model(Backend.CPU, Adam.builder().build(), Precision.FP32, Precision.FP32, 1)) {
            m.steps(1, 3);
            m.opt.save(file);
        }
        byte[] bytes = Files.readAllBytes(file);
        try (Model sgd = new Model(Backend.CPU, Sgd.builder().build(), Precision.FP32, Precision.FP32, 1)) {
            assertTrue(refused(sgd, sgd.snapshot(), bytes, "wrong algorithm").contains("is for adam, this optimizer runs sgd"));
        }
        try (Model amsgrad = new Model(Backend.CPU, Adam.builder().optAmsgrad(true).build(), Precision.FP32, Precision.FP32, 1)) {
            assertTrue(refused(amsgrad, amsgrad.snapshot(), bytes, "other state layout").contains("state tensors differ"));
        }
        try (Model bf16 = new Model(Backend.CPU, Adam.builder().build(), Precision.BF16, Precision.FP32, 1)) {
            assertTrue(refused(bf16, bf16.snapshot(), bytes, "other formats").contains("'layer0/weight/param' is FP32, this optimizer's is BF16"));
        }
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build()).optBackend(Backend.CPU)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
            ParamGroup a = opt.addGroup();
            ParamGroup b = opt.addGroup();
            a.add("layer0/weight", opt.allocate(5), opt.allocate(5));
            b.add("layer1/weight", opt.allocate(70_000), opt.allocate(70_000));
            a.add("layer2/weight", opt.allocate(1), opt.allocate(1));
            Path copy = dir.resolve("shape.safetensors");
            Files.write(copy, bytes);
            CheckpointException e = assertThrows(CheckpointException.class, () -> opt.load(copy));
            assertTrue(e.getMessage().contains("70001 elements, this optimizer's has 70000 (wrong shape)"), e.getMessage());
        }
        CheckpointException missing = assertThrows(CheckpointException.class, () -> {
            try (Model m = new Model(Backend.CPU, Adam.builder().build(), Precision.FP32, Precision.FP32, 1)) {
                m.opt.load(dir.resolve("nope.safetensors"));
            }
        });
        assertTrue(missing.getMessage().contains("no such file"));
    }

    /** Loads {@code bytes}; asserts a CheckpointException and an unchanged optimizer; returns the message. */
    private String refused(Model target, List<float[]> before, byte[] bytes, String what) throws IOException {
        Path file = dir.resolve("damaged.safetensors");
        Files.write(file, bytes);
        long steps = target.opt.stepCount();
        CheckpointException e = assertThrows(CheckpointException.class, () -> target.opt.load(file), what);
        List<float[]> after = target.snapshot();
        for (int i = 0; i < before.size(); i++) CudaEquivalenceTest.assertBitEqual(before.get(i), after.get(i), what + ": tensor " + i);
        assertEquals(steps, target.opt.stepCount(), what);
        assertTrue(e.getMessage().contains(file.toString()), "the message names the file: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void configurationsRoundTripThroughTheirStrings() {
        for (OptimizerConfig c : Variants.elementwise().values()) {
            assertEquals(c, ConfigCodec.decode(ConfigCodec.encode(c)));
        }
        Map<String, String> bad = new java.util.LinkedHashMap<>(ConfigCodec.encode(Adam.builder().build()));
        bad.put("beta1", "1.5");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ConfigCodec.decode(bad));
        assertTrue(e.getMessage().contains("beta1"), e.getMessage());
    }
}
