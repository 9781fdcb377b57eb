package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link Rprop} against its definition, PyTorch's {@code _single_tensor_rprop}
 * ({@code torch/optim/rprop.py}, 1.13 and the current upstream version compute the same):
 * <pre>
 *   grad = -grad if maximize
 *   sign = grad.mul(prev).sign(); sign[sign.gt(0)] = etaplus; sign[sign.lt(0)] = etaminus; sign[sign.eq(0)] = 1
 *   step_size.mul_(sign).clamp_(step_size_min, step_size_max)
 *   grad = grad.clone(); grad[sign.eq(etaminus)] = 0
 *   param.addcmul_(grad.sign(), step_size, value=-1)
 *   prev.copy_(grad)
 * </pre>
 * with prev = 0 and step_size = lr when the state is created, at the parameter's first step; written
 * again here in float64. Plus the learning rate's one use (the initial step size), the values
 * where float32 rules decide (zeros, NaN, infinities, a product that underflows) on every backend,
 * and the validation of every hyper-parameter.
 */
class RpropFormulaTest {
    private static final int STEPS = 8;
    private static final double FLOAT32_HALF_ULP = 0x1p-24;

    /** float64 state of one tensor, stepped by the definition above. */
    private static final class Float64Rprop {
        final double[] p;
        final double[] prev;
        final double[] stepSize;
        final double[] stepSizeBound; // bound on |float32 step size - stepSize| (see stepsMatchTheDefinitionInFloat64)
        final double[] pBound;        // bound on |float32 p - p|
        final Rprop c;

        Float64Rprop(Rprop c, float[] p0) {
            this.c = c;
            int n = p0.length;
            p = new double[n];
            prev = new double[n];
            stepSize = new double[n];
            stepSizeBound = new double[n];
            pBound = new double[n];
            for (int i = 0; i < n; i++) {
                p[i] = p0[i];
                stepSize[i] = c.learningRate();
                stepSizeBound[i] = c.learningRate() * FLOAT32_HALF_ULP;
            }
        }

        void step(float[] grad) {
            for (int i = 0; i < p.length; i++) {
                double g = c.maximize() ? -grad[i] : grad[i];
                double d = g * prev[i];
                double f = d > 0 ? c.etaPlus() : d < 0 ? c.etaMinus() : 1;
                double grown = stepSize[i] * f;
                // The float32 product adds half an ulp, and eta's own rounding half an ulp more.
                double grownBound = (stepSizeBound[i] * f + 2 * FLOAT32_HALF_ULP * grown) * (1 + 4 * FLOAT32_HALF_ULP);
                stepSize[i] = Math.min(Math.max(grown, c.stepSizeMin()), c.stepSizeMax());
                stepSizeBound[i] = clampedBound(grown, grownBound, stepSize[i], c.stepSizeMin(), c.stepSizeMax());
                if (d < 0) g = 0;
                p[i] += -Math.signum(g) * stepSize[i];
                // p + (-sign(g) * stepSize) rounds once, and the step carries the step size's error.
                if (g != 0) pBound[i] += stepSizeBound[i] + FLOAT32_HALF_ULP * (Math.abs(p[i]) + pBound[i] + stepSizeBound[i]);
                prev[i] = g;
            }
        }

        /**
         * The bound after the clamp: a clamped size is the bound itself, rounded to float32 once;
         * where float32 and float64 may fall on different sides of a bound (grown within its error
         * of it) the difference is at most twice the error plus the bound's rounding.
         */
        private static double clampedBound(double grown, double grownBound, double clamped, double lo, double hi) {
            for (double limit : new double[] {lo, hi}) {
                if (Math.abs(grown - limit) <= grownBound + limit * FLOAT32_HALF_ULP) {
                    return 2 * grownBound + limit * FLOAT32_HALF_ULP;
                }
            }
            return clamped == grown ? grownBound : clamped * FLOAT32_HALF_ULP;
        }
    }

    static Stream<Arguments> configurations() {
        return Stream.of(
                Arguments.of("defaults", Rprop.builder().build()),
                Arguments.of("maximize, lr above the upper bound, both bounds reached",
                        Rprop.builder().optLearningRate(0.05).optEtas(0.25, 1.5).optStepSizes(0.01, 0.04).optMaximize(true).build()),
                Arguments.of("etas not exact in float32", Rprop.builder().optLearningRate(0.3).optEtas(0.3, 1.7).build()));
    }

    /**
     * Eight steps of 40 elements, whose gradients keep their sign, alternate it, take random signs,
     * or are 0 every third step (magnitudes in [0.1, 2), so no product underflows and every sign
     * test is the same in float32 and float64). prev is compared exactly (it is g or 0); the step
     * size and p within a bound carried along: every float32 multiply and add adds half an ulp of its
     * result, eta adds half an ulp once per multiply, a clamp to a bound leaves only that bound's
     * rounding, and p's error is the sum of its roundings and of its steps' errors.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("configurations")
    void stepsMatchTheDefinitionInFloat64(String name, Rprop config) {
        int n = 40;
        Random random = new Random(28);
        float[] p0 = new float[n];
        for (int i = 0; i < n; i++) p0[i] = (float) random.nextGaussian();
        List<float[]> grads = new ArrayList<>();
        for (int t = 1; t <= STEPS; t++) {
            float[] g = new float[n];
            for (int i = 0; i < n; i++) {
                float magnitude = 0.1f + 1.9f * random.nextFloat();
                g[i] = switch (i % 4) {
                    case 0 -> i % 8 == 0 ? magnitude : -magnitude;      // one sign throughout: grows to stepSizeMax
                    case 1 -> t % 2 == 0 ? magnitude : -magnitude;      // alternating: shrinks to stepSizeMin
                    case 2 -> random.nextBoolean() ? magnitude : -magnitude;
                    default -> t % 3 == 0 ? 0f : magnitude;             // d = 0 after a zero: the size stays
                };
            }
            grads.add(g);
        }
        Float64Rprop expected = new Float64Rprop(config, p0);
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer p = opt.allocate(n), g = opt.allocate(n);
            p.copyFrom(p0);
            Parameter tensor = opt.addGroup().add("w", p, g);
            for (int t = 1; t <= STEPS; t++) {
                g.copyFrom(grads.get(t - 1));
                opt.step();
                expected.step(grads.get(t - 1));
                float[] param = p.toArray(), prev = tensor.state(StateKind.PREV).toArray(),
                        stepSize = tensor.state(StateKind.STEP_SIZE).toArray();
                for (int i = 0; i < n; i++) {
                    String where = name + ", step " + t + ", element " + i;
                    assertEquals(expected.prev[i], prev[i], 0, where + ": prev");
                    assertEquals(expected.stepSize[i], stepSize[i], expected.stepSizeBound[i], where + ": step_size");
                    assertEquals(expected.p[i], param[i], expected.pBound[i], where + ": p");
                }
            }
            if (config.stepSizeMax() < config.learningRate()) { // the clamping configuration reaches both bounds
                float[] stepSize = tensor.state(StateKind.STEP_SIZE).toArray();
                assertEquals((float) config.stepSizeMax(), stepSize[0], "a gradient that keeps its sign grows to stepSizeMax");
                assertEquals((float) config.stepSizeMin(), stepSize[1], "an alternating gradient shrinks to stepSizeMin");
            }
        }
    }

    /**
     * PyTorch reads lr once, when it creates a parameter's state at the parameter's first step: the
     * rate in effect then, set before that step or scheduled, is the step size; later rates change
     * nothing.
     */
    @Test
    void theRateOfATensorsFirstStepIsItsInitialStepSizeAndLaterRatesChangeNothing() {
        Rprop config = Rprop.builder().optLearningRate(0.01).build();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            ParamGroup group = opt.addGroup();
            TensorBuffer p = opt.allocate(1), g = opt.allocate(1);
            Parameter tensor = group.add("w", p, g);
            assertEquals(0.01f, tensor.state(StateKind.STEP_SIZE).toArray()[0], "before the first step: the configuration's lr");
            group.setLearningRate(0.02); // after add, before the first step: PyTorch would read this one
            g.copyFrom(new float[] {1f});
            opt.step();
            assertEquals(0.02f, tensor.state(StateKind.STEP_SIZE).toArray()[0]);
            assertEquals(-0.02f, p.toArray()[0]);
            group.setLearningRate(0.5);
            opt.step();
            assertEquals(0.02f * 1.2f, tensor.state(StateKind.STEP_SIZE).toArray()[0], "grown from 0.02; 0.5 is not read");
            assertEquals(-0.02f - 0.02f * 1.2f, p.toArray()[0]);
        }
        // A schedule: its factor at a tensor's first step sets that tensor's initial step size.
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            ParamGroup group = opt.addGroup();
            group.setSchedule(LrSchedule.constant(0.5, 2)); // lr * 0.5 for the first two steps, then lr
            TensorBuffer p = opt.allocate(1), g = opt.allocate(1);
            Parameter early = group.add("early", p, g);
            g.copyFrom(new float[] {0f});
            opt.step();
            opt.step();
            opt.step();
            TensorBuffer lateP = opt.allocate(1), lateG = opt.allocate(1);
            Parameter late = group.add("late", lateP, lateG);
            lateG.copyFrom(new float[] {0f});
            opt.step();
            assertEquals(0.005f, early.state(StateKind.STEP_SIZE).toArray()[0], "first step under the factor 0.5");
            assertEquals(0.01f, late.state(StateKind.STEP_SIZE).toArray()[0], "first step after the schedule's phase");
        }
    }

    /**
     * Per element, three steps: {p0, g1, g2, g3}. The values where the float32 rules decide, each
     * with what the definition gives (sign(+-0) = +0; NaN propagates; d underflows to 0).
     */
    private static final float[][] SPECIAL = {
        {1f, 1f, Float.NaN, 1f},                // NaN: step size and p become NaN, and stay
        {1f, Float.POSITIVE_INFINITY, 1f, 1f},  // first step: d = inf * 0 = NaN
        {1f, 1f, Float.NEGATIVE_INFINITY, 1f},  // d = -inf: shrinks, g zeroed, p stays
        {-0f, -0f, -0f, 0f},                    // zero gradients leave p = -0 as it is
        {0f, 0f, -0f, -0f},
        {2f, 1e-30f, 1e-30f, 1e-30f},           // d = 1e-60 underflows to 0: the size stays, p moves
        {2f, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_VALUE}, // subnormals: d underflows too
        {3f, 1f, -1f, -1f},                     // flip, then d = -1 * 0 = -0
        {3f, -2f, -2f, -2f},
    };

    /** The special values on CPU: their defined outcome. */
    @Test
    void zerosNaNsInfinitiesAndUnderflowFollowTheDefinition() {
        Rprop config = Rprop.builder().optLearningRate(0.25).build();
        List<float[]> r = runSpecial(Backend.CPU, config, SPECIAL.length);
        float[] p = r.get(0), prev = r.get(1), stepSize = r.get(2);
        assertTrue(Float.isNaN(p[0]) && Float.isNaN(stepSize[0]), "a NaN gradient makes the size and p NaN, for good");
        assertEquals(1f, prev[0], "prev is the last gradient");
        assertTrue(Float.isNaN(p[1]) && Float.isNaN(stepSize[1]), "inf at the first step: d = inf * 0 is NaN");
        assertEquals(0.125f, stepSize[2], "d = -inf shrinks the size");
        assertEquals(1f - 0.25f - 0.125f, p[2], "no move at the flip");
        for (int i = 3; i <= 4; i++) {
            assertEquals(Float.floatToRawIntBits(SPECIAL[i][0]), Float.floatToRawIntBits(p[i]), "p unchanged, sign bit included");
            assertEquals(0.25f, stepSize[i], "d = +-0: the size stays");
        }
        assertEquals(0.25f, stepSize[5], "d underflows to 0: the size stays");
        assertEquals(2f - 3 * 0.25f, p[5], "p moves by the size each step");
        assertEquals(0.25f, stepSize[6], "d underflows to -0: the size stays");
        assertEquals(2f - 0.25f + 0.25f - 0.25f, p[6], "subnormal gradients have a sign");
        assertEquals(0.125f, stepSize[7], "shrunk at the flip, then d = -1 * 0 = -0 keeps it");
        assertEquals(3f - 0.25f + 0.125f, p[7], "no move at the flip, then a move of the shrunk size");
        assertEquals(-1f, prev[7]);
        assertEquals(0.25f * 1.2f * 1.2f, stepSize[8], "grown twice");
        assertEquals(3f + 0.25f + 0.25f * 1.2f + 0.25f * 1.2f * 1.2f, p[8], "each step rounds once");
    }

    /** The special values over the vector path (many lanes, a tail) equal the reference bit for bit. */
    @Test
    void specialValuesGiveTheSameBitsOnCpuFast() {
        Rprop config = Rprop.builder().optLearningRate(0.25).optMaximize(true).build();
        int n = 16 * SPECIAL.length + 5;
        assertSameBits(runSpecial(Backend.CPU, config, n), runSpecial(Backend.CPU_FAST, config, n), "CPU_FAST");
    }

    /** The same on CUDA (on the emulator in CI): vector loads, a scalar tail. */
    @Test
    @Tag("gpu")
    void specialValuesGiveTheSameBitsOnCuda() {
        GpuTests.assumeGpu();
        Rprop config = Rprop.builder().optLearningRate(0.25).optMaximize(true).build();
        int n = 16 * SPECIAL.length + 5;
        assertSameBits(runSpecial(Backend.CPU, config, n), runSpecial(Backend.CUDA, config, n), "CUDA");
    }

    /** p, prev and step_size after three steps of {@link #SPECIAL}'s rows repeated over n elements. */
    private static List<float[]> runSpecial(Backend backend, Rprop config, int n) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, config)) {
            TensorBuffer p = opt.allocate(n), g = opt.allocate(n);
            p.copyFrom(column(n, 0));
            Parameter tensor = opt.addGroup().add("w", p, g);
            for (int t = 1; t <= 3; t++) {
                g.copyFrom(column(n, t));
                opt.step();
            }
            return List.of(p.toArray(), tensor.state(StateKind.PREV).toArray(), tensor.state(StateKind.STEP_SIZE).toArray());
        }
    }

    private static float[] column(int n, int k) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = SPECIAL[i % SPECIAL.length][k];
        return v;
    }

    private static void assertSameBits(List<float[]> expected, List<float[]> actual, String backend) {
        String[] names = {"p", "prev", "step_size"};
        for (int k = 0; k < names.length; k++) {
            CudaEquivalenceTest.assertBitEqual(expected.get(k), actual.get(k), backend + " " + names[k]);
        }
    }

    static Stream<Arguments> refused() {
        return Stream.of(
                Arguments.of("learningRate", (Supplier<Rprop>) () -> Rprop.builder().optLearningRate(-0.01).build()),
                Arguments.of("etaMinus", (Supplier<Rprop>) () -> Rprop.builder().optEtas(0, 1.2).build()),
                Arguments.of("etaMinus", (Supplier<Rprop>) () -> Rprop.builder().optEtas(1, 1.2).build()),
                Arguments.of("etaMinus", (Supplier<Rprop>) () -> Rprop.builder().optEtas(0.999999999, 1.2).build()), // 1 in float32
                Arguments.of("etaPlus", (Supplier<Rprop>) () -> Rprop.builder().optEtas(0.5, 1).build()),
                Arguments.of("etaPlus", (Supplier<Rprop>) () -> Rprop.builder().optEtas(0.5, 1.00000001).build()), // 1 in float32
                Arguments.of("etaPlus", (Supplier<Rprop>) () -> Rprop.builder().optEtas(0.5, Double.NaN).build()),
                Arguments.of("stepSizeMin", (Supplier<Rprop>) () -> Rprop.builder().optStepSizes(-1e-6, 50).build()),
                Arguments.of("stepSizeMax", (Supplier<Rprop>) () -> Rprop.builder().optStepSizes(1e-6, 1e39).build()),
                Arguments.of("stepSizeMin", (Supplier<Rprop>) () -> Rprop.builder().optStepSizes(1, 0.5).build()),
                Arguments.of("weightDecay", (Supplier<Rprop>) () -> Rprop.builder().optWeightDecay(0.01).build()),
                Arguments.of("weightDecay", (Supplier<Rprop>) () -> Rprop.builder().optWeightDecay(Double.NaN).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("refused")
    void eachBadHyperParameterIsRefusedByName(String named, Supplier<Rprop> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().startsWith(named), e.getMessage());
    }

    @Test
    void defaultsArePyTorchsAndWeightDecayZeroIsAccepted() {
        Rprop defaults = Rprop.builder().build();
        assertEquals(new Rprop(1e-2, 0.5, 1.2, 1e-6, 50, false), defaults);
        OptimizerConfig.Builder generic = defaults.toBuilder();
        assertEquals(defaults, generic.optWeightDecay(0).build(), "code written for every algorithm works");
        Rprop.Builder b = Rprop.builder().optLearningRate(0.1);
        assertThrows(IllegalArgumentException.class, () -> b.optWeightDecay(0.1));
        assertEquals(0.1, b.build().learningRate(), "the builder is unchanged by the refused call");
        assertSame(StateKind.PREV, defaults.stateKinds().get(0));
        assertEquals(List.of("prev", "step_size"), defaults.stateKinds().stream().map(StateKind::stateName).toList());
    }
}
