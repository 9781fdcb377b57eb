package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * ASGD on the CPU reference against an independent float64 computation of PyTorch's
 * {@code _single_tensor_asgd} (torch/optim/asgd.py, torch 1.13), written out here: PyTorch keeps eta
 * and mu as state, updated after each step s to {@code lr/(1 + lambd*lr*s)^alpha} and
 * {@code 1/max(1, s - t0)} and starting at lr and 1, so step t uses
 * {@code eta = lr/(1 + lambd*lr*(t-1))^alpha} and {@code mu = 1/max(1, (t-1) - t0)}; with a
 * constant lr the recurrence below is PyTorch's (with the step's lr it is ours, see {@link Asgd}).
 *
 * <p>Bound: {@code 2e-6 * max(1, |x|)} on p and ax after each of at most 8 steps. The float32 path
 * rounds eta, decay and mu once each (relative 2^-24 = 6e-8) and p three times per step (L2 FMA,
 * multiply, FMA), ax three times; with |g| and |p| of order 1 and eta &lt;= 0.1 each step adds at
 * most about 6 half-ulps of the values to the difference, about 3.6e-7 per step, under 2e-6 after
 * the 8 steps checked here. The averaging branch (mu != 1) runs from step t0 + 3; t0 is 0 or 2 here.
 */
class AsgdFormulaTest {
    private static final double BOUND = 2e-6;

    /** Gradients per step (rows) and element (columns): signs mixed, one zero, magnitudes near 1. */
    private static final float[][] GRADS = {
        {0.5f, -1.25f, 0f, 2f},
        {-0.75f, 0.25f, 1f, 1.5f},
        {1f, -0.5f, -2f, 0.125f},
        {0.25f, 1.75f, 0.5f, -1f},
        {-1.5f, -0.25f, 0.75f, 0.5f},
        {0.625f, 0.5f, -0.25f, -1.25f},
        {-0.5f, 1f, 1.25f, 0.25f},
        {1.25f, -0.75f, -0.5f, 0.75f},
    };
    private static final float[] INITIAL = {1f, -0.5f, 0.25f, 2f};

    /** The float64 PyTorch recurrence over GRADS, with the learning rate of each step given. */
    private static double[][][] float64Trajectory(double[] lrPerStep, double lambd, double alpha, double t0,
                                                  double weightDecay, boolean maximize) {
        int n = INITIAL.length;
        double[] p = new double[n];
        double[] ax = new double[n];
        for (int i = 0; i < n; i++) p[i] = INITIAL[i];
        double[][][] out = new double[GRADS.length][][];
        for (int t = 1; t <= GRADS.length; t++) {
            double lr = lrPerStep[t - 1];
            double eta = lr / Math.pow(1 + lambd * lr * (t - 1), alpha);
            double mu = 1 / Math.max(1, (t - 1) - t0);
            for (int i = 0; i < n; i++) {
                double g = maximize ? -GRADS[t - 1][i] : GRADS[t - 1][i];
                g = g + weightDecay * p[i];
                p[i] = p[i] * (1 - lambd * eta);
                p[i] = p[i] - eta * g;
                ax[i] = mu != 1 ? ax[i] + (p[i] - ax[i]) * mu : p[i];
            }
            out[t - 1] = new double[][] {p.clone(), ax.clone()};
        }
        return out;
    }

    /** Runs {@code config} on the CPU reference, with {@code lrPerStep[t-1]} set before step t, and checks every step. */
    private static void assertFollowsFloat64(Asgd config, double[] lrPerStep) {
        double[][][] expected = float64Trajectory(lrPerStep, config.lambd(), config.alpha(), config.t0(),
                config.weightDecay(), config.maximize());
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            ParamGroup group = opt.addGroup();
            TensorBuffer p = opt.allocate(INITIAL.length);
            TensorBuffer g = opt.allocate(INITIAL.length);
            p.copyFrom(INITIAL);
            Parameter param = group.add("p", p, g);
            boolean averaged = false;
            for (int t = 1; t <= GRADS.length; t++) {
                group.setConfig(config.withLearningRate(lrPerStep[t - 1]));
                g.copyFrom(GRADS[t - 1]);
                opt.step();
                float[] actualP = p.toArray();
                float[] actualAx = param.state(StateKind.AX).toArray();
                for (int i = 0; i < INITIAL.length; i++) {
                    near(expected[t - 1][0][i], actualP[i], "p[" + i + "] at step " + t);
                    near(expected[t - 1][1][i], actualAx[i], "ax[" + i + "] at step " + t);
                    averaged |= actualAx[i] != actualP[i];
                }
            }
            assertTrue(averaged, "the averaging branch ran (ax differs from p)");
        }
    }

    private static void near(double expected, float actual, String what) {
        assertEquals(expected, actual, BOUND * Math.max(1, Math.abs(expected)), what);
    }

    private static double[] constant(double lr) {
        double[] lrs = new double[GRADS.length];
        java.util.Arrays.fill(lrs, lr);
        return lrs;
    }

    @Test
    void plainWithAveragingFromStepFive() {
        assertFollowsFloat64(Asgd.builder().optLearningRate(0.1).optLambd(0.5).optT0(2).build(), constant(0.1));
    }

    @Test
    void l2AndMaximizeWithAveragingFromStepThree() {
        assertFollowsFloat64(Asgd.builder().optLearningRate(0.05).optLambd(0.25).optAlpha(0.5).optT0(0)
                .optWeightDecay(0.125).optMaximize(true).build(), constant(0.05));
    }

    @Test
    void pytorchDefaultsOtherThanT0() {
        // lambd 1e-4, alpha 0.75: eta barely moves, and the decay factor 1 - 1e-6 is only about 17
        // float32 ulps below 1: checks that it is computed from eta in double, not lost.
        assertFollowsFloat64(Asgd.builder().optT0(2).build(), constant(1e-2));
    }

    /** An lr change acts on the step it is set for (eta uses that step's lr), not one step later as in PyTorch. */
    @Test
    void learningRateChangeActsOnItsOwnStep() {
        double[] lrs = constant(0.1);
        for (int t = 4; t <= GRADS.length; t++) lrs[t - 1] = 0.02;
        assertFollowsFloat64(Asgd.builder().optLearningRate(0.1).optLambd(0.5).optT0(0).build(), lrs);
    }

    @Test
    void defaultsArePytorchs() {
        Asgd d = Asgd.builder().build();
        assertEquals(1e-2, d.learningRate());
        assertEquals(1e-4, d.lambd());
        assertEquals(0.75, d.alpha());
        assertEquals(1e6, d.t0());
        assertEquals(0, d.weightDecay());
        assertEquals(false, d.maximize());
        assertEquals(d, d.toBuilder().build());
        assertNotEquals(d, d.withLearningRate(0.5));
    }

    static Stream<Arguments> badHyperParameters() {
        return Stream.of(
                bad("learningRate", "-0.1", () -> Asgd.builder().optLearningRate(-0.1).build()),
                bad("lambd", "-1.0", () -> Asgd.builder().optLambd(-1).build()),
                bad("lambd", "NaN", () -> Asgd.builder().optLambd(Double.NaN).build()),
                bad("alpha", "-0.75", () -> Asgd.builder().optAlpha(-0.75).build()),
                bad("alpha", "Infinity", () -> Asgd.builder().optAlpha(Double.POSITIVE_INFINITY).build()),
                bad("t0", "-2.0", () -> Asgd.builder().optT0(-2).build()),
                bad("t0", "1.0E40", () -> Asgd.builder().optT0(1e40).build()), // overflows float32
                bad("weightDecay", "-0.01", () -> Asgd.builder().optWeightDecay(-0.01).build()));
    }

    private static Arguments bad(String name, String value, Supplier<Asgd> build) {
        return Arguments.of(name, value, build);
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("badHyperParameters")
    void eachBadHyperParameterIsRefusedByName(String name, String value, Supplier<Asgd> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().startsWith(name + " must be"), e.getMessage());
        assertTrue(e.getMessage().contains(value), e.getMessage());
    }
}
