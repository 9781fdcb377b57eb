package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cpu.CpuEngine;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.NewtonSchulz;
import io.fusedopt.internal.algorithms.MuonAlgorithm;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Muon on the CUDA backend (kernels/muon.cu, fusedopt_matrix.cuh: the input pass, the norms, the
 * normalization, the Newton-Schulz products, the update) equals the CPU reference backend bit for
 * bit: params, master weights and momentum buffers, on shapes wide, tall (the transposed path),
 * square, a single row, and one that crosses the products' 16-element tiles in every dimension;
 * with 16-bit params, master weights, stochastic rounding, bf16 states, loss scaling with
 * clipping, a step skipped for a non-finite gradient, a captured step, beside an AdamW group, and
 * groups of different Newton-Schulz step counts. Fast mode (cuBLAS products with bf16 inputs):
 * bit for bit its model on the emulator, within {@link Muon#FAST_TOLERANCE} of exact mode anywhere,
 * its numerics kept across a checkpoint. Skipped, with the probe's reason, without a GPU.
 */
@Tag("gpu")
class CudaMuonTest {
    /**
     * rows x cols: wide, tall (transposed), square, one row, and across the 16 x 16 product tiles;
     * 5 x 3 and 4 x 8 share the Newton-Schulz shape of 3 x 5 and 8 x 4 (batched together).
     */
    private static final int[][] SHAPES = {{3, 5}, {8, 4}, {16, 16}, {1, 7}, {33, 17}, {5, 3}, {4, 8}};
    private static final int STEPS = 3;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    /** One run's setup: the optimizer's options, the groups (each with every shape), the params' format. */
    private record Setup(UnaryOperator<DeviceOptimizer.Builder> options, List<OptimizerConfig> groups, Precision paramPrecision,
                         float gradScale) {
        Setup(OptimizerConfig config) {
            this(b -> b, List.of(config), Precision.FP32, 1f);
        }

        Setup options(UnaryOperator<DeviceOptimizer.Builder> o) {
            return new Setup(o, groups, paramPrecision, gradScale);
        }

        Setup params(Precision p) {
            return new Setup(options, groups, p, gradScale);
        }

        Setup gradScale(float scale) {
            return new Setup(options, groups, paramPrecision, scale);
        }

        /** The same setup with every Muon group in exact mode: what the CPU backends run. */
        Setup exact() {
            return new Setup(options, groups.stream().map(CudaMuonTest::exact).toList(), paramPrecision, gradScale);
        }
    }

    private static OptimizerConfig exact(OptimizerConfig config) {
        return config instanceof Muon muon ? muon.toBuilder().optNumerics(Muon.Numerics.EXACT).build() : config;
    }

    /** An optimizer of the setup with its params registered, each group holding every shape. */
    private static final class Model implements AutoCloseable {
        final DeviceOptimizer opt;
        final List<Parameter> params = new ArrayList<>();
        final Setup setup;

        Model(Backend backend, Setup setup) {
            this(b -> b.optBackend(backend).build(), setup);
        }

        /** An optimizer that {@code open} builds from the setup's builder. */
        Model(Function<DeviceOptimizer.Builder, DeviceOptimizer> open, Setup setup) {
            this.setup = setup;
            opt = open.apply(setup.options().apply(DeviceOptimizer.builder(setup.groups().get(0))));
            for (int g = 0; g < setup.groups().size(); g++) {
                ParamGroup group = opt.addGroup(setup.groups().get(g));
                for (int[] shape : SHAPES) {
                    int n = shape[0] * shape[1];
                    String name = "g" + g + "." + shape[0] + "x" + shape[1];
                    TensorBuffer p = opt.allocate(n, setup.paramPrecision());
                    p.copyFrom(Scenario.gaussian(new Random(name.hashCode()), n, 0.5f));
                    TensorBuffer grad = opt.allocate(n, setup.paramPrecision());
                    params.add(muon(group) ? group.add(name, p, grad, shape[0], shape[1]) : group.add(name, p, grad));
                }
            }
        }

        private static boolean muon(ParamGroup group) {
            return group.config() instanceof Muon;
        }

        /** Step t's gradients (a function of the name and t), scaled by the setup's loss scale; NaN in the first tensor with {@code poison}. */
        void feed(int t, boolean poison) {
            for (Parameter p : params) {
                float[] g = Scenario.gaussian(new Random(31L * p.name().hashCode() + t), (int) p.length(), setup.gradScale());
                if (poison && p == params.get(0)) g[1] = Float.NaN;
                p.grad().copyFrom(g);
            }
        }

        /** Changes the first group's learning rate (a step scalar the device reads, and the adjusted lr it derives). */
        void changeLearningRate() {
            ParamGroup group = opt.groups().get(0);
            group.setLearningRate(group.learningRate() * 0.5);
        }

        /** Every param, master and state as raw bits, by name. */
        Map<String, int[]> bits() {
            Map<String, int[]> out = new LinkedHashMap<>();
            for (Parameter p : params) {
                out.put(p.name(), raw(p.param().toArray()));
                p.masterWeights().ifPresent(m -> out.put(p.name() + "/master", raw(m.toArray())));
                for (StateKind k : p.stateKinds()) out.put(p.name() + "/" + k.stateName(), raw(p.state(k).toArray()));
            }
            return out;
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    private static int[] raw(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) bits[i] = Float.floatToRawIntBits(values[i]);
        return bits;
    }

    /** The state after STEPS steps, the learning rate halved after the first. */
    private static Map<String, int[]> run(Backend backend, Setup setup) {
        return run(b -> b.optBackend(backend).build(), setup);
    }

    /** {@link #run(Backend, Setup)} on the optimizer {@code open} builds. */
    private static Map<String, int[]> run(Function<DeviceOptimizer.Builder, DeviceOptimizer> open, Setup setup) {
        try (Model model = new Model(open, setup)) {
            for (int t = 0; t < STEPS; t++) {
                model.feed(t, false);
                model.opt.step();
                if (t == 0) model.changeLearningRate();
            }
            return model.bits();
        }
    }

    private static void assertSameBits(Map<String, int[]> expected, Map<String, int[]> actual, String what) {
        assertEquals(expected.keySet(), actual.keySet(), what + ": tensors");
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            assertArrayEquals(e.getValue(), actual.get(e.getKey()), what + ": " + e.getKey() + " differs from the CPU backend");
        }
    }

    private static void assertCudaEqualsCpu(Setup setup, String what) {
        assertSameBits(run(Backend.CPU, setup), run(Backend.CUDA, setup), what);
    }

    static Stream<Arguments> variants() {
        return new MuonAlgorithm().variants().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void everyVariantEqualsTheCpuBackend(String name, Muon config) {
        assertCudaEqualsCpu(new Setup(config), name);
    }

    @Test
    void bf16ParamsWithMasterWeights() {
        assertCudaEqualsCpu(new Setup(Muon.builder().optLearningRate(0.02).build()).params(Precision.BF16)
                .options(b -> b.optMasterWeights(true)), "bf16 + master");
    }

    @Test
    void bf16ParamsRoundedStochastically() {
        assertCudaEqualsCpu(new Setup(Muon.builder().optLearningRate(0.02).build()).params(Precision.BF16)
                .options(b -> b.optMasterWeights(false).optStochasticRounding(0x5EEDL)), "bf16 stochastic rounding");
    }

    @Test
    void bf16States() {
        assertCudaEqualsCpu(new Setup(Muon.builder().optLearningRate(0.02).build())
                .options(b -> b.optStatePrecision(Precision.BF16)), "bf16 states");
    }

    /** The gradient pipeline: unscaled by the loss scale, then clipped to the global norm (both flags set). */
    @Test
    void lossScalingAndClipping() {
        Setup setup = new Setup(Muon.builder().optLearningRate(0.02).build()).gradScale(1024f)
                .options(b -> b.optMaxGradNorm(0.5));
        Map<String, int[]> cpu, cuda;
        try (Model model = new Model(Backend.CPU, setup)) {
            cpu = scaledRun(model);
        }
        try (Model model = new Model(Backend.CUDA, setup)) {
            cuda = scaledRun(model);
        }
        assertSameBits(cpu, cuda, "loss scale + clipping");
    }

    private static Map<String, int[]> scaledRun(Model model) {
        model.opt.setGradScale(1024);
        for (int t = 0; t < STEPS; t++) {
            model.feed(t, false);
            model.opt.step();
            assertTrue(model.opt.lastStep().clipCoefficient() < 1f, "the gradient is clipped");
        }
        return model.bits();
    }

    /** A non-finite gradient with SKIP_STEP: the step changes nothing (the matrix passes return early too). */
    @Test
    void aSkippedStepChangesNothing() {
        Setup setup = new Setup(Muon.builder().optLearningRate(0.02).build()).options(b -> b.optNonFinitePolicy(NonFinitePolicy.SKIP_STEP));
        try (Model model = new Model(Backend.CUDA, setup)) {
            model.feed(0, false);
            model.opt.step();
            Map<String, int[]> before = model.bits();
            model.feed(1, true);
            model.opt.step();
            assertTrue(model.opt.lastStep().skipped());
            assertSameBits(before, model.bits(), "after a skipped step");
        }
    }

    /** A captured step replayed (the learning rate changed between replays) equals steps run on the CPU backend. */
    @Test
    void capturedStepReplaysEqualTheCpuBackend() {
        Setup setup = new Setup(Muon.builder().optLearningRate(0.02).build());
        Map<String, int[]> cuda;
        try (Model model = new Model(Backend.CUDA, setup); StepGraph graph = model.opt.captureStep()) {
            for (int t = 0; t < STEPS; t++) {
                model.feed(t, false);
                graph.replay();
                if (t == 0) model.changeLearningRate();
            }
            cuda = model.bits();
        }
        assertSameBits(run(Backend.CPU, setup), cuda, "captured step");
    }

    @Test
    void besideAnAdamWGroup() {
        assertCudaEqualsCpu(new Setup(b -> b, List.of(Adam.adamW().optLearningRate(1e-2).build(),
                Muon.builder().optLearningRate(0.02).build()), Precision.FP32, 1f), "AdamW + Muon");
    }

    /**
     * A tall tensor of two chunks (the transposed path across a chunk boundary; the tensor's sum of
     * squares from two partial sums), one Newton-Schulz step to keep the emulator fast.
     */
    @Test
    void aTensorOfTwoChunks() {
        int rows = (1 << 16) + 7;
        Muon config = Muon.builder().optLearningRate(0.02).optNsSteps(1).build();
        Map<String, int[]> expected = null;
        for (Backend backend : List.of(Backend.CPU, Backend.CUDA)) {
            try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(backend).build()) {
                TensorBuffer p = opt.allocate(rows);
                p.copyFrom(Scenario.gaussian(new Random(7), rows, 0.5f));
                Parameter param = opt.addGroup(config).add("tall", p, opt.allocate(rows), rows, 1);
                for (int t = 0; t < 2; t++) {
                    param.grad().copyFrom(Scenario.gaussian(new Random(100 + t), rows, 1f));
                    opt.step();
                }
                Map<String, int[]> bits = Map.of("param", raw(param.param().toArray()),
                        "buffer", raw(param.state(StateKind.MOMENTUM_BUFFER).toArray()));
                if (expected == null) expected = bits;
                else assertSameBits(expected, bits, "two chunks");
            }
        }
    }

    /** Groups of 5, 2 and 0 Newton-Schulz steps: their tensors take separate product launches, 0 takes none. */
    @Test
    void groupsOfDifferentStepCounts() {
        assertCudaEqualsCpu(new Setup(b -> b, List.of(Muon.builder().optLearningRate(0.02).build(),
                Muon.builder().optLearningRate(0.01).optNsSteps(2).build(),
                Muon.builder().optLearningRate(0.01).optNsSteps(0).optNesterov(false).build()), Precision.FP32, 1f),
                "nsSteps 5, 2, 0");
    }

    // Fast mode (Muon.Numerics.FAST): the Newton-Schulz products on cuBLAS with bf16 inputs.

    /**
     * The emulator's cuBLAS double sums each product element as exact mode does (fma over k
     * increasing from +0): there fast mode must be exact mode with every product's inputs rounded
     * to bf16, which this gives the CPU reference backend.
     */
    private static final NewtonSchulz.Products BF16_INPUTS = new NewtonSchulz.Products() {
        @Override
        public void gramOfRows(float[] x, int m, int n, float[] out) {
            NewtonSchulz.gramOfRows(bf16(x, m * n), m, n, out);
        }

        @Override
        public void symmetricSquare(float[] s, int m, float[] out) {
            NewtonSchulz.symmetricSquare(bf16(s, m * m), m, out);
        }

        @Override
        public void product(float[] p, float[] q, int r, int s, int t, float[] out) {
            NewtonSchulz.product(bf16(p, r * s), bf16(q, s * t), r, s, t, out);
        }
    };

    /** The first {@code n} values rounded to bf16 (nearest even), as the kernels' __float2bfloat16_rn. */
    private static float[] bf16(float[] values, int n) {
        float[] rounded = new float[n];
        for (int i = 0; i < n; i++) rounded[i] = Conversions.widen(Precision.BF16, Conversions.narrow(Precision.BF16, values[i]));
        return rounded;
    }

    /** Fast mode's config; a test that builds one needs cuBLAS (skipped on a real GPU without it). */
    private static Muon fast(Muon.Builder builder) {
        GpuTests.assumeCublas();
        return builder.optNumerics(Muon.Numerics.FAST).build();
    }

    /** The CPU reference backend with the emulator's bf16-input products. */
    private static DeviceOptimizer bf16InputModel(DeviceOptimizer.Builder builder) {
        return builder.build(new CpuEngine(BF16_INPUTS));
    }

    /**
     * Fast mode on the emulator, stepped and captured (the cuBLAS calls recorded into the graph),
     * equals its model bit for bit: groups of 5 and 2 steps (the second plain, Moonshot's lr
     * adjustment), AdamW beside them, tensors of one shape batched in one cuBLAS call.
     */
    @Test
    void fastModeOnTheEmulatorIsExactModeOnBf16Inputs() {
        assumeTrue(GpuTests.onEmulator(), "a real cuBLAS sums in an order of its own: fastModeIsWithinItsToleranceOfExactMode holds it");
        Setup setup = new Setup(b -> b, List.of(fast(Muon.builder().optLearningRate(0.02)), Adam.adamW().optLearningRate(1e-2).build(),
                fast(Muon.builder().optLearningRate(0.01).optNesterov(false).optWeightDecay(0).optNsSteps(2)
                        .optLrAdjustment(Muon.LrAdjustment.MATCH_RMS_ADAMW))), Precision.FP32, 1f);
        Map<String, int[]> model = run(CudaMuonTest::bf16InputModel, setup.exact());
        assertSameBits(model, run(Backend.CUDA, setup), "fast mode");
        try (Model cuda = new Model(Backend.CUDA, setup); StepGraph graph = cuda.opt.captureStep()) {
            for (int t = 0; t < STEPS; t++) {
                cuda.feed(t, false);
                graph.replay();
                if (t == 0) cuda.changeLearningRate();
            }
            assertSameBits(model, cuda.bits(), "fast mode, captured");
        }
    }

    /** An exact and a fast group in one batch: each tensor follows its own group's numerics. */
    @Test
    void exactAndFastGroupsSideBySide() {
        assumeTrue(GpuTests.onEmulator(), "the bf16-input model is the emulator's cuBLAS order");
        Muon exact = Muon.builder().optLearningRate(0.02).build();
        Setup setup = new Setup(b -> b, List.of(exact, fast(exact.toBuilder())), Precision.FP32, 1f);
        Map<String, int[]> cuda = run(Backend.CUDA, setup);
        Map<String, int[]> reference = run(Backend.CPU, setup.exact());
        Map<String, int[]> model = run(CudaMuonTest::bf16InputModel, setup.exact());
        assertEquals(reference.keySet(), cuda.keySet());
        for (Map.Entry<String, int[]> e : cuda.entrySet()) {
            boolean exactGroup = e.getKey().startsWith("g0.");
            assertArrayEquals((exactGroup ? reference : model).get(e.getKey()), e.getValue(),
                    e.getKey() + " differs from " + (exactGroup ? "the CPU reference" : "fast mode's model"));
        }
    }

    /**
     * Fast mode's orthogonalized matrix within {@link Muon#FAST_TOLERANCE} of exact mode's,
     * relative in the Frobenius norm, per tensor and step, on the emulator's double and on a real
     * cuBLAS alike. With params starting at 0, lr 1 and no weight decay, a step's displacement is
     * {@code -lr' O}; both runs see the same momentum, which does not depend on O.
     */
    @Test
    void fastModeIsWithinItsToleranceOfExactMode() {
        int[][] shapes = {{32, 128}, {128, 32}, {64, 64}, {33, 17}};
        Muon exact = Muon.builder().optLearningRate(1).optWeightDecay(0).build();
        double[][][] moves = new double[2][][];
        for (int mode = 0; mode < 2; mode++) {
            Muon config = mode == 0 ? exact : fast(exact.toBuilder());
            moves[mode] = new double[STEPS * shapes.length][];
            try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(Backend.CUDA).build()) {
                ParamGroup group = opt.addGroup(config);
                List<Parameter> params = new ArrayList<>();
                for (int[] shape : shapes) {
                    int n = shape[0] * shape[1];
                    params.add(group.add(shape[0] + "x" + shape[1], opt.allocate(n), opt.allocate(n), shape[0], shape[1]));
                }
                for (int t = 0; t < STEPS; t++) {
                    float[][] before = new float[params.size()][];
                    for (int i = 0; i < params.size(); i++) {
                        Parameter p = params.get(i);
                        p.grad().copyFrom(Scenario.gaussian(new Random(31L * p.name().hashCode() + t), (int) p.length(), 1f));
                        before[i] = p.param().toArray();
                    }
                    opt.step();
                    for (int i = 0; i < params.size(); i++) {
                        float[] after = params.get(i).param().toArray();
                        double[] move = new double[after.length];
                        for (int k = 0; k < after.length; k++) move[k] = (double) after[k] - before[i][k];
                        moves[mode][t * shapes.length + i] = move;
                    }
                }
            }
        }
        double worst = 0;
        for (int j = 0; j < moves[0].length; j++) {
            double difference = 0, norm = 0;
            for (int k = 0; k < moves[0][j].length; k++) {
                double d = moves[1][j][k] - moves[0][j][k];
                difference += d * d;
                norm += moves[0][j][k] * moves[0][j][k];
            }
            double relative = Math.sqrt(difference / norm);
            String what = "step " + j / shapes.length + ", " + shapes[j % shapes.length][0] + "x" + shapes[j % shapes.length][1];
            assertTrue(relative <= Muon.FAST_TOLERANCE, what + ": fast mode is " + relative + " from exact mode, relative");
            assertTrue(relative > 0, what + ": fast mode gave exact mode's bits, so its products were not bf16");
            worst = Math.max(worst, relative);
        }
        System.out.printf("Muon fast mode against exact mode: worst relative Frobenius difference %.4f (tolerance %.2f)%n",
                worst, Muon.FAST_TOLERANCE);
    }

    /**
     * The numerics are the optimizer's: a checkpoint saved in fast mode resumes in exact mode on
     * the CPU (and an exact checkpoint in fast mode on CUDA), with every other value the saved one.
     */
    @Test
    void numericsStayTheOptimizersAcrossACheckpoint() throws java.io.IOException {
        Muon fastConfig = fast(Muon.builder().optLearningRate(0.02));
        Setup setup = new Setup(fastConfig);
        byte[] checkpoint;
        Map<String, int[]> saved;
        try (Model cuda = new Model(Backend.CUDA, setup)) {
            cuda.feed(0, false);
            cuda.opt.step();
            cuda.changeLearningRate();
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            cuda.opt.save(out);
            checkpoint = out.toByteArray();
            saved = cuda.bits();
        }
        try (Model cpu = new Model(Backend.CPU, setup.exact())) {
            cpu.opt.load(checkpoint);
            Muon resumed = (Muon) cpu.opt.groups().get(0).config();
            assertEquals(Muon.Numerics.EXACT, resumed.numerics());
            assertEquals(0.01, resumed.learningRate(), 1e-9, "the saved learning rate");
            assertSameBits(saved, cpu.bits(), "loaded");
            cpu.feed(1, false);
            cpu.opt.step();
        }
        try (Model cuda = new Model(Backend.CUDA, setup)) {
            cuda.opt.load(checkpoint);
            assertEquals(Muon.Numerics.FAST, ((Muon) cuda.opt.groups().get(0).config()).numerics());
        }
    }
}
