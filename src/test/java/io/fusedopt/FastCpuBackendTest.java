package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.cpu.FastCpuEngine;
import io.fusedopt.internal.Conversions;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The fast CPU backend equals the reference bit for bit: every variant on sizes that are not
 * multiples of any vector width (1 to 17 lanes, chunk and block boundaries), the mixed-precision
 * and gradient-pipeline scenarios of {@link CudaPipelineTest}, tensors crossing many off-heap blocks,
 * and many threads; and a step allocates nothing. CI runs this class twice: with the Vector API
 * and without the module (the loop fallback); {@link #reportsWhichKernelsRan()} shows which.
 */
class FastCpuBackendTest {
    /** Around every vector width (4, 8, 16 lanes), a chunk (65536) and several chunks. */
    static final int[] SIZES = {1, 3, 7, 8, 15, 16, 17, 31, 33, 1023, 65536 + 13, 3 * 65536 + 5};

    static Stream<Arguments> variants() {
        return Variants.elementwise().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    /** {@link Variants#onePerKernel()}: memory layouts do not depend on an algorithm's flags. */
    static Stream<Arguments> kernels() {
        return Variants.onePerKernel().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    @Test
    void reportsWhichKernelsRan() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU_FAST, Adam.builder().build())) {
            assertEquals(Backend.CPU_FAST, opt.backend());
            String expected = System.getProperty("fusedopt.test.expectVector");
            if (expected != null) {
                boolean vector = opt.deviceDescription().contains("Vector API,");
                assertEquals(Boolean.parseBoolean(expected), vector, opt.deviceDescription());
            }
            System.out.println("FastCpuBackendTest runs on: " + opt.deviceDescription());
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void everyVariantEqualsTheReference(String name, OptimizerConfig config) {
        Scenario s = Scenario.of(config, SIZES);
        Scenario.assertSame(s.run(Backend.CPU), s.run(Backend.CPU_FAST), name);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("io.fusedopt.CudaPipelineTest#scenarios")
    void mixedPrecisionAndGradientPipelineEqualTheReference(String name, Scenario scenario) {
        Scenario.assertSame(scenario.run(Backend.CPU), scenario.run(Backend.CPU_FAST), name);
    }

    @Test
    void capturedStepsEqualTheReference() {
        Scenario s = Scenario.of(Adam.adamW().optLearningRate(1e-2).build(), SIZES)
                .formats(Precision.BF16, Precision.BF16, Precision.FP32, true)
                .pipeline(NonFinitePolicy.SKIP_STEP, 1.5, 256, 4).capturedSteps();
        Scenario.assertSame(s.run(Backend.CPU), s.run(Backend.CPU_FAST), "captured");
    }

    /**
     * Blocks of 2^16 elements: each chunk is a block of its own, and tensors, copies and mixed
     * operands cross block boundaries everywhere, as a 2^31-element tensor does with 2^28 blocks.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("kernels")
    void tensorsAcrossManyBlocksEqualTheReference(String name, OptimizerConfig config) {
        int[] sizes = {5 * 65536 + 3, 65536, 2 * 65536 - 1};
        for (Precision param : new Precision[] {Precision.FP32, Precision.BF16}) {
            Scenario s = Scenario.of(config, sizes).formats(param, Precision.FP32, param, true);
            Scenario.Result fast;
            DeviceOptimizer.Builder b = s.builder(Backend.CPU_FAST);
            try (DeviceOptimizer opt = b.build(new FastCpuEngine(3, 16))) {
                fast = s.runOn(opt);
            }
            Scenario.assertSame(s.run(Backend.CPU), fast, name + " " + param);
        }
    }

    /**
     * The caller's memory is one block (a wrapped buffer) while the backend's state is many: each
     * operand's chunk lies at its own offset in its own block. A float[] param, a direct grad at
     * position 3, allocated fp32 states on 2^16-element blocks (in place, vectors where this JDK
     * reads them), and bf16 states (widened through scratch).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("kernels")
    void wrappedMemoryBesideStatesAcrossManyBlocksEqualsTheReference(String name, OptimizerConfig config) {
        int n = 3 * 65536 + 5;
        float[] initial = Scenario.gaussian(new Random(11), n, 1f);
        for (Precision state : new Precision[] {Precision.FP32, Precision.BF16}) {
            List<float[]> results = new ArrayList<>();
            for (boolean fast : new boolean[] {false, true}) {
                float[] w = initial.clone();
                java.nio.FloatBuffer grad = java.nio.ByteBuffer.allocateDirect(4 * (n + 3)).order(java.nio.ByteOrder.nativeOrder())
                        .asFloatBuffer().position(3);
                DeviceOptimizer.Builder b = DeviceOptimizer.builder(config).optStatePrecision(state);
                try (DeviceOptimizer opt = fast ? b.build(new FastCpuEngine(2, 16)) : b.optBackend(Backend.CPU).build()) {
                    TensorBuffer g = opt.wrapHost(grad);
                    opt.addGroup().add("w", opt.wrapHost(w), g);
                    Random random = new Random(12);
                    for (int step = 0; step < 3; step++) {
                        g.copyFrom(Scenario.gaussian(random, n, 0.5f));
                        opt.step();
                    }
                }
                results.add(w);
            }
            CudaEquivalenceTest.assertBitEqual(results.get(0), results.get(1), name + ", " + state + " states");
            assertTrue(results.get(0)[n - 1] != initial[n - 1], "the last chunk was updated");
        }
    }

    @Test
    void copiesAcrossBlockBoundariesRoundTrip() {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().build()).build(new FastCpuEngine(1, 16))) {
            for (Precision p : Precision.values()) {
                TensorBuffer t = opt.allocate(3 * 65536 + 11, p);
                float[] values = Scenario.gaussian(new Random(5), (int) t.length(), 1f);
                for (int i = 0; i < values.length; i++) values[i] = p == Precision.FP32 ? values[i] : Conversions.widen(p, Conversions.narrow(p, values[i]));
                t.copyFrom(values);
                CudaEquivalenceTest.assertBitEqual(values, t.toArray(), p + " round trip");
                float[] window = new float[70000];
                t.copyTo(65536 - 7, window, 0, window.length);
                for (int i = 0; i < window.length; i++) assertEquals(values[65536 - 7 + i], window[i], p + " at " + i);
            }
        }
    }

    @ParameterizedTest(name = "{0} threads")
    @MethodSource("threadCounts")
    void anyThreadCountGivesTheSameBits(int threads) {
        Scenario s = Scenario.of(Adam.adamW().optAmsgrad(true).build(), SIZES).pipeline(NonFinitePolicy.SKIP_STEP, 1.0, 8, 3);
        Scenario.Result fast;
        try (DeviceOptimizer opt = s.builder(Backend.CPU_FAST).optCpuThreads(threads).build()) {
            fast = s.runOn(opt);
        }
        Scenario.assertSame(s.run(Backend.CPU), fast, threads + " threads");
    }

    static Stream<Integer> threadCounts() {
        return Stream.of(1, 2, 5);
    }

    /** After warm-up a step allocates nothing on the stepping thread or on the workers. */
    @Test
    void aStepAllocatesNothing() {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU_FAST)
                .optCpuThreads(3).optMaxGradNorm(1.0).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
            ParamGroup group = opt.addGroup();
            List<TensorBuffer> grads = new ArrayList<>();
            for (Precision p : new Precision[] {Precision.FP32, Precision.BF16}) {
                TensorBuffer w = opt.allocate(5 * 65536 + 9, p);
                TensorBuffer g = opt.allocate(5 * 65536 + 9, p);
                g.copyFrom(Scenario.gaussian(new Random(3), (int) g.length(), 1f));
                group.add("w" + p, w, g);
                grads.add(g);
            }
            assertStepsAllocateNothing(opt, 2);
        }
    }

    /**
     * After 200 warm-up steps, {@code opt}'s steps allocate nothing on the stepping thread or on
     * its team's {@code workers} workers.
     */
    static void assertStepsAllocateNothing(DeviceOptimizer opt, int workers) {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        for (int i = 0; i < 200; i++) opt.step(); // warm up: JIT, lazy class loading, worker start
        long[] ids = teamThreadIds();
        assertEquals(workers, ids.length - 1, "the team's workers beside the caller");
        // The steady state must allocate nothing. C2 compiles the vector kernels in the background,
        // later on a busy machine; until then the interpreter and C1 box every vector. So windows of
        // 50 steps are measured until one allocates nothing, for at most 60 s; the last one is reported.
        long[] allocated = new long[ids.length];
        long deadline = System.nanoTime() + 60_000_000_000L;
        do {
            // The measurement allocates its result array on this thread: an empty interval calibrates it.
            long[] emptyBefore = threads.getThreadAllocatedBytes(ids);
            long[] emptyAfter = threads.getThreadAllocatedBytes(ids);
            long[] before = threads.getThreadAllocatedBytes(ids);
            for (int i = 0; i < 50; i++) opt.step();
            long[] after = threads.getThreadAllocatedBytes(ids);
            for (int i = 0; i < ids.length; i++) allocated[i] = after[i] - before[i] - (emptyAfter[i] - emptyBefore[i]);
        } while (java.util.Arrays.stream(allocated).anyMatch(b -> b != 0) && System.nanoTime() < deadline);
        for (int i = 0; i < ids.length; i++) {
            assertEquals(0, allocated[i], "bytes allocated by thread " + ids[i] + " over 50 steps, after up to 60 s of steps");
        }
    }

    private static long[] teamThreadIds() {
        List<Long> ids = new ArrayList<>();
        ids.add(Thread.currentThread().getId());
        for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            if (e.getKey().getName().startsWith("fusedopt-cpu-") && e.getKey().isAlive()) ids.add(e.getKey().getId());
        }
        return ids.stream().mapToLong(Long::longValue).toArray();
    }

    @Test
    void closingTheOptimizerStopsItsThreads() throws InterruptedException {
        int before = countTeamThreads();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().build()).optBackend(Backend.CPU_FAST).optCpuThreads(4).build()) {
            TensorBuffer w = opt.allocate(1 << 18);
            opt.addGroup().add("w", w, opt.allocate(1 << 18));
            opt.step();
            assertEquals(before + 3, countTeamThreads());
        }
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (countTeamThreads() > before && System.nanoTime() < deadline) Thread.sleep(10);
        assertEquals(before, countTeamThreads());
    }

    private static int countTeamThreads() {
        int n = 0;
        for (Thread t : Thread.getAllStackTraces().keySet()) if (t.getName().startsWith("fusedopt-cpu-") && t.isAlive()) n++;
        return n;
    }

    @Test
    void wrappedHostBuffersEqualTheReference() {
        float[] initial = Scenario.gaussian(new Random(9), 70001, 1f);
        float[] gradient = Scenario.gaussian(new Random(10), 70001, 1f);
        List<float[]> results = new ArrayList<>();
        for (Backend backend : new Backend[] {Backend.CPU, Backend.CPU_FAST}) {
            float[] w = initial.clone();
            java.nio.FloatBuffer direct = java.nio.ByteBuffer.allocateDirect(4 * 70001).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
            direct.put(gradient).flip();
            try (DeviceOptimizer opt = DeviceOptimizer.create(backend, RmsProp.builder().optCentered(true).build())) {
                opt.addGroup().add("w", opt.wrapHost(w), opt.wrapHost(direct));
                for (int i = 0; i < 3; i++) opt.step();
            }
            results.add(w);
        }
        CudaEquivalenceTest.assertBitEqual(results.get(0), results.get(1), "wrapped arrays");
        assertTrue(results.get(0)[0] != initial[0]);
    }
}
