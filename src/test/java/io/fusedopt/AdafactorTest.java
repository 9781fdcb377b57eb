package io.fusedopt;

import static io.fusedopt.CudaEquivalenceTest.assertBitEqual;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithms;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link Adafactor} on every backend with the shapes the shared suites do not make (they register
 * vectors only): a vector, two matrices and a rank-3 tensor (two 3 x 4 matrices) in one group, so
 * that the factored and the unfactored second moments, the per-matrix row means and the per-tensor
 * RMS run side by side. The CPU reference, CPU_FAST and CUDA (the emulator, {@code gpu} tag) give
 * the same bits, with float32 and with 16-bit params (masters, stochastic rounding) and states;
 * a skipped step changes nothing; a checkpoint resumes bit for bit and records torch's state
 * shapes; a late or frozen tensor takes its own step t; what Adafactor cannot do is refused.
 * The formula itself is {@link AdafactorReferenceTest}'s (against PyTorch's, in float64).
 */
class AdafactorTest {
    static final long[][] SHAPES = {{7}, {3, 5}, {8, 4}, {2, 3, 4}};
    static final int STEPS = 6;

    static Stream<Arguments> variants() {
        return Algorithms.of(Adafactor.builder().build()).variants().entrySet().stream()
                .map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    /** An optimizer's setup beside its backend. */
    record Setup(Precision param, Precision state, boolean masters, boolean stochastic) {
        static final Setup FLOAT32 = new Setup(Precision.FP32, Precision.FP32, false, false);

        DeviceOptimizer create(Backend backend, OptimizerConfig config) {
            DeviceOptimizer.Builder b = DeviceOptimizer.builder(config).optBackend(backend).optStatePrecision(state)
                    .optMasterWeights(masters).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP);
            if (stochastic) b.optStochasticRounding(11);
            return b.build();
        }
    }

    /** The tensors of {@link #SHAPES} in one group of {@code opt}, from a seeded start. */
    static final class Run implements AutoCloseable {
        final DeviceOptimizer opt;
        final List<Parameter> params = new ArrayList<>();
        final List<TensorBuffer> grads = new ArrayList<>();
        final Random random;

        Run(Backend backend, OptimizerConfig config, Setup setup, long seed) {
            opt = setup.create(backend, config);
            random = new Random(seed);
            ParamGroup group = opt.addGroup();
            for (int t = 0; t < SHAPES.length; t++) {
                int n = (int) Arrays.stream(SHAPES[t]).reduce(1, (a, b) -> a * b);
                TensorBuffer p = opt.allocate(n, setup.param());
                TensorBuffer g = opt.allocate(n, setup.param());
                p.copyFrom(Scenario.gaussian(random, n, 1f));
                params.add(group.add("t" + t, p, g, SHAPES[t]));
                grads.add(g);
            }
        }

        /** One step with seeded gradients (a row of the matrices 0 at every other step: V floored at eps1^2 there). */
        void step(int t) {
            step(t, random);
        }

        /** {@link #step(int)} with gradients from {@code stream}. */
        void step(int t, Random stream) {
            for (int i = 0; i < grads.size(); i++) {
                float[] g = Scenario.gaussian(stream, (int) grads.get(i).length(), t % 3 == 0 ? 1e-3f : 1f);
                if (t % 2 == 0 && SHAPES[i].length == 2) Arrays.fill(g, 0, (int) SHAPES[i][1], 0f);
                grads.get(i).copyFrom(g);
            }
            opt.step();
        }

        /** Every param, master and state, in order. */
        List<float[]> snapshot() {
            List<float[]> all = new ArrayList<>();
            for (Parameter p : params) {
                all.add(p.param().toArray());
                p.masterWeights().ifPresent(m -> all.add(m.toArray()));
                for (StateKind kind : p.stateKinds()) all.add(p.state(kind).toArray());
            }
            return all;
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    static List<float[]> trained(Backend backend, OptimizerConfig config, Setup setup, int steps) {
        try (Run run = new Run(backend, config, setup, 5)) {
            for (int t = 1; t <= steps; t++) run.step(t);
            return run.snapshot();
        }
    }

    static void assertSameBits(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size(), what + ": arrays");
        for (int i = 0; i < expected.size(); i++) assertBitEqual(expected.get(i), actual.get(i), what + ", array " + i);
    }

    static Stream<Arguments> setups() {
        return Stream.of(Setup.FLOAT32, new Setup(Precision.BF16, Precision.FP32, true, false),
                new Setup(Precision.BF16, Precision.BF16, false, true), new Setup(Precision.FP16, Precision.FP32, true, false))
                .map(Arguments::of);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void cpuFastEqualsTheReferenceBitForBit(String name, Adafactor config) {
        assertSameBits(trained(Backend.CPU, config, Setup.FLOAT32, STEPS), trained(Backend.CPU_FAST, config, Setup.FLOAT32, STEPS), name);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("setups")
    void sixteenBitParamsAndStatesAgreeOnBothCpuBackends(Setup setup) {
        Adafactor config = Adafactor.builder().optLearningRate(0.05).build();
        List<float[]> reference = trained(Backend.CPU, config, setup, 4);
        assertSameBits(reference, trained(Backend.CPU_FAST, config, setup, 4), setup.toString());
        assertFalse(Arrays.equals(reference.get(0), trained(Backend.CPU, config, setup, 0).get(0)), "the params moved");
    }

    @Tag("gpu")
    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void cudaEqualsTheReferenceBitForBit(String name, Adafactor config) {
        GpuTests.assumeGpu();
        assertSameBits(trained(Backend.CPU, config, Setup.FLOAT32, STEPS), trained(Backend.CUDA, config, Setup.FLOAT32, STEPS), name);
    }

    @Tag("gpu")
    @ParameterizedTest(name = "{0}")
    @MethodSource("setups")
    void cudaSixteenBitParamsAndStatesEqualTheReference(Setup setup) {
        GpuTests.assumeGpu();
        Adafactor config = Adafactor.builder().optLearningRate(0.05).optMaximize(true).build();
        assertSameBits(trained(Backend.CPU, config, setup, 4), trained(Backend.CUDA, config, setup, 4), setup.toString());
    }

    /** torch's state: variance for the vector, row_var [..., R, 1] and col_var [..., 1, C] for the others; t's own at t = 1: V = G^2 exactly. */
    @Test
    void statesHaveTorchsShapesAndTheFirstStepSetsThemToTheSquares() throws java.io.IOException {
        try (Run run = new Run(Backend.CPU, Adafactor.builder().build(), Setup.FLOAT32, 3)) {
            float[] g = Scenario.gaussian(new Random(4), 7, 1f);
            run.grads.get(0).copyFrom(g);
            for (int i = 1; i < SHAPES.length; i++) run.grads.get(i).copyFrom(new float[(int) run.grads.get(i).length()]);
            run.opt.step();
            assertEquals(List.of(StateKind.VARIANCE), run.params.get(0).stateKinds());
            float[] variance = run.params.get(0).state(StateKind.VARIANCE).toArray();
            for (int k = 0; k < 7; k++) assertEquals(g[k] * g[k], variance[k], "variance[" + k + "] at t = 1");
            Parameter rank3 = run.params.get(3);
            assertEquals(List.of(StateKind.ROW_VAR, StateKind.COL_VAR), rank3.stateKinds());
            assertEquals(2 * 3, rank3.state(StateKind.ROW_VAR).length());
            assertEquals(2 * 4, rank3.state(StateKind.COL_VAR).length());
            byte[] saved = run.opt.saveToBytes();
            String header = new String(saved, 0, Math.min(saved.length, 8192), java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(header.contains("\"t3/row_var\":{\"dtype\":\"F32\",\"shape\":[2,3,1]"), header);
            assertTrue(header.contains("\"t3/col_var\":{\"dtype\":\"F32\",\"shape\":[2,1,4]"), header);
            assertTrue(header.contains("\"t0/variance\":{\"dtype\":\"F32\",\"shape\":[7]"), header);
        }
    }

    /** A step skipped for a non-finite gradient in one tensor changes no param and no state, and no step counter. */
    @Test
    void aSkippedStepChangesNothing() {
        try (Run run = new Run(Backend.CPU, Adafactor.builder().build(), Setup.FLOAT32, 8)) {
            run.step(1);
            List<float[]> before = run.snapshot();
            float[] g = new float[15];
            g[4] = Float.NaN;
            run.grads.get(1).copyFrom(g);
            run.opt.step();
            assertSameBits(before, run.snapshot(), "after a skipped step");
            assertEquals(1, run.params.get(1).stepCount());
            run.step(2);
            assertEquals(2, run.params.get(1).stepCount());
        }
    }

    @Tag("gpu")
    @Test
    void cudaSkipsTheStepToo() {
        GpuTests.assumeGpu();
        try (Run run = new Run(Backend.CUDA, Adafactor.builder().build(), Setup.FLOAT32, 8)) {
            run.step(1);
            List<float[]> before = run.snapshot();
            float[] g = new float[24];
            g[23] = Float.POSITIVE_INFINITY;
            run.grads.get(3).copyFrom(g);
            run.opt.step();
            assertSameBits(before, run.snapshot(), "after a skipped step");
        }
    }

    /** Saved after 3 steps and loaded into a fresh registration, 3 more steps give the bits of 6 in one go, on either CPU backend. */
    @Test
    void aCheckpointResumesBitForBit() throws java.io.IOException {
        Adafactor config = Adafactor.builder().optWeightDecay(0.1).build();
        List<float[]> whole = trained(Backend.CPU, config, Setup.FLOAT32, 6);
        for (Backend backend : new Backend[] {Backend.CPU, Backend.CPU_FAST}) {
            byte[] saved;
            try (Run first = new Run(Backend.CPU, config, Setup.FLOAT32, 5)) {
                for (int t = 1; t <= 3; t++) first.step(t);
                saved = first.opt.saveToBytes();
                try (Run resumed = new Run(backend, config, Setup.FLOAT32, 99)) {
                    resumed.opt.load(saved);
                    // The whole run's gradients of steps 4 to 6: first's random stream, continued.
                    for (int t = 4; t <= 6; t++) resumed.step(t, first.random);
                    assertSameBits(whole, resumed.snapshot(), "resumed on " + backend);
                }
            }
        }
    }

    /** A checkpoint of a [2, 3, 4] tensor does not load into a [3, 2, 4] one: its row_var [2, 3, 1] has the length of [3, 2, 1], not the shape. */
    @Test
    void aFactorOfAnotherShapeDoesNotLoad() throws java.io.IOException {
        Adafactor config = Adafactor.builder().build();
        byte[] saved;
        try (Run run = new Run(Backend.CPU, config, Setup.FLOAT32, 5)) {
            run.step(1);
            saved = run.opt.saveToBytes();
        }
        try (DeviceOptimizer other = Setup.FLOAT32.create(Backend.CPU, config)) {
            ParamGroup group = other.addGroup();
            for (int t = 0; t < 3; t++) {
                int n = (int) Arrays.stream(SHAPES[t]).reduce(1, (a, b) -> a * b);
                group.add("t" + t, other.allocate(n), other.allocate(n), SHAPES[t]);
            }
            Parameter swapped = group.add("t3", other.allocate(24), other.allocate(24), 3, 2, 4);
            LoadReport report = other.load(saved, LoadOptions.builder().optStrict(false).build());
            Map<String, String> mismatched = report.mismatched();
            assertEquals("has shape [2, 3, 1], this optimizer's has [3, 2, 1]", mismatched.get("t3/row_var"), report.toString());
            assertEquals("has 8 elements, this optimizer's has 12 (wrong shape)", mismatched.get("t3/col_var"), report.toString());
            for (float v : swapped.state(StateKind.ROW_VAR).toArray()) assertEquals(0f, v, "a mismatched tensor is not loaded");
            CheckpointException e = assertThrows(CheckpointException.class, () -> other.load(saved));
            assertTrue(e.getMessage().contains("tensor 't3/"), e.getMessage());
        }
    }

    /** A tensor added after 3 steps and one frozen for 2 steps take their own t, as torch's per-parameter step. */
    @Test
    void lateAndFrozenTensorsTakeTheirOwnStep() {
        Adafactor config = Adafactor.builder().optLearningRate(0.5).build();
        float[] start = Scenario.gaussian(new Random(2), 15, 1f);
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < 3; t++) grads.add(Scenario.gaussian(new Random(30 + t), 15, 1f));
        float[] alone;
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer p = opt.allocate(15), g = opt.allocate(15);
            p.copyFrom(start);
            opt.addGroup().add("late", p, g, 3, 5);
            for (float[] step : grads) {
                g.copyFrom(step);
                opt.step();
            }
            alone = p.toArray();
        }
        for (Backend backend : new Backend[] {Backend.CPU, Backend.CPU_FAST}) {
            try (Run run = new Run(backend, config, Setup.FLOAT32, 5)) {
                for (int t = 1; t <= 3; t++) run.step(t);
                TensorBuffer p = run.opt.allocate(15), g = run.opt.allocate(15);
                p.copyFrom(start);
                Parameter late = run.opt.groups().get(0).add("late", p, g, 3, 5);
                run.params.get(1).freeze();
                for (float[] step : grads) {
                    g.copyFrom(step);
                    run.step(4);
                }
                assertEquals(3, late.stepCount());
                assertEquals(3, run.params.get(1).stepCount(), "frozen for 3 steps");
                assertBitEqual(alone, p.toArray(), "the late tensor on " + backend + " as if alone");
            }
        }
    }

    /** CPU_FAST's description counts the tensors it updates whole apart from those its vectors or loops update chunk by chunk. */
    @Test
    void theFastDescriptionSaysWhichTensorsAreUpdatedWhole() {
        try (Run run = new Run(Backend.CPU_FAST, Adafactor.builder().build(), Setup.FLOAT32, 1)) {
            run.step(1);
            assertTrue(run.opt.deviceDescription().endsWith("; step: 4 tensors updated whole by loops (factored kernels))"),
                    run.opt.deviceDescription());
            ParamGroup sgd = run.opt.addGroup(Sgd.builder().build());
            sgd.add("w", run.opt.allocate(9), run.opt.allocate(9));
            run.opt.step();
            assertTrue(run.opt.deviceDescription().endsWith("); 4 tensors updated whole by loops (factored kernels))"),
                    run.opt.deviceDescription());
        }
    }

    /** 8-bit states are refused (Adafactor has no 8-bit form); nothing is added. */
    @Test
    void eightBitStatesAreRefused() {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT).build()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.addGroup(Adafactor.builder().build()));
            assertTrue(e.getMessage().contains("Adafactor has no form of"), e.getMessage());
            assertEquals(0, opt.groups().size());
        }
    }

    /** A group's Adafactor keeps its states: another algorithm is refused, and the group still runs Adafactor. */
    @Test
    void anotherAlgorithmIsRefusedForAnAdafactorGroup() {
        try (Run run = new Run(Backend.CPU, Adafactor.builder().build(), Setup.FLOAT32, 1)) {
            ParamGroup group = run.opt.groups().get(0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> group.setConfig(Adam.builder().build()));
            assertTrue(e.getMessage().contains("runs adafactor"), e.getMessage());
            assertEquals(Adafactor.builder().build(), group.config());
            group.setConfig(Adafactor.builder().optLearningRate(0.1).build()); // hyper-parameters may change
            run.step(1);
        }
    }
}
