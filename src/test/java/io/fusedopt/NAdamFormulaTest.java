package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.algorithms.NAdamAlgorithm;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * {@link NAdam} against an independent float64 transcription of PyTorch's
 * {@code _single_tensor_nadam} (pytorch/pytorch {@code torch/optim/nadam.py}, torch 2.1 and later:
 * {@code decoupled_weight_decay}, {@code maximize}), with mu_product kept as PyTorch keeps it, a
 * running product updated every step, and mu_t from {@code 0.96 ** (t * momentum_decay)}. The
 * transcription starts from the float32 hyper-parameters fusedopt uses (the rule of
 * {@link OptimizerConfig}), so what remains is float32 rounding.
 */
class NAdamFormulaTest {
    /**
     * The bound for the parameters after a few steps, relative to max(1, |p|): each step rounds
     * about a dozen float32 operations (each at most 2^-24 relative) and the per-step scalars once
     * each, and the two update terms are at most lr-sized against parameters of order 1; five steps
     * stay well below 20 float32 ulps of 1.
     */
    private static final double PARAM_BOUND = 20 * 0x1p-24;
    /** Scalars rounded once from double: within half a float32 ulp, plus a few double ulps of slack. */
    private static final double SCALAR_BOUND = 0x1p-24 * (1 + 1e-9);

    private static final float[] INITIAL = {0.5f, -1.25f, 2f, 0f, -0.003f, 1e-4f, 3f};
    private static final float[][] GRADS = {
        {0.3f, -0.7f, 1.5f, 0f, 2e-3f, 1e-6f, -0.01f},
        {-0.2f, 0.4f, 1.1f, 0.5f, 0f, -1e-6f, 0.02f},
        {0.25f, -0.1f, 0.9f, -0.5f, 1e-3f, 1e-6f, 0.05f},
        {0.1f, 0.3f, -0.4f, 0.25f, -2e-3f, 0f, -0.03f},
        {-0.05f, -0.6f, 0.7f, 0f, 5e-4f, 2e-6f, 0.01f},
    };

    @Test
    void defaultsFollowPyTorch() {
        NAdam c = NAdam.builder().build();
        assertEquals(2e-3, c.learningRate());
        assertEquals(0.9, c.beta1());
        assertEquals(0.999, c.beta2());
        assertEquals(1e-8, c.epsilon());
        assertEquals(0, c.weightDecay());
        assertEquals(4e-3, c.momentumDecay());
        assertEquals(false, c.decoupledWeightDecay());
        assertEquals(false, c.maximize());
        assertEquals(c, c.toBuilder().build());
    }

    @Test
    void plainStepsFollowTheFormula() {
        assertFollowsFormula(NAdam.builder().optLearningRate(1e-2).build());
    }

    @Test
    void l2DecayAndOtherBetasFollowTheFormula() {
        assertFollowsFormula(NAdam.builder().optLearningRate(1e-2).optWeightDecay(0.05).optBetas(0.85, 0.99)
                .optMomentumDecay(1e-2).optEpsilon(1e-6).build());
    }

    @Test
    void decoupledDecayWithMaximizeFollowsTheFormula() {
        assertFollowsFormula(NAdam.builder().optLearningRate(1e-2).optWeightDecay(0.05)
                .optDecoupledWeightDecay(true).optMaximize(true).build());
    }

    @Test
    void aHugeMomentumDecayFollowsTheFormula() {
        // 0.96^psi underflows to 0: mu_t = beta1 from the first step on.
        assertFollowsFormula(NAdam.builder().optLearningRate(1e-2).optMomentumDecay(1e6).build());
    }

    /**
     * The per-step scalars for t = 1..200, against the running product of mu_i = beta1 * (1 - 0.5 *
     * 0.96^(i*psi)) in float64 (PyTorch's mu_product, without its float32 rounding), for betas where
     * the product falls below 2^-60 within these steps (so the steps after fusedopt stops
     * multiplying are covered too).
     */
    @Test
    void scalarsFollowTheRunningProduct() {
        for (NAdam c : List.of(NAdam.builder().build(),
                NAdam.builder().optBetas(0.99, 0.999).optMomentumDecay(1e-2).build(),
                NAdam.builder().optBetas(0.5, 0.9).optMomentumDecay(0).build(),
                NAdam.builder().optBetas(0.7, 0.999).optMomentumDecay(50).build())) {
            double lr = (float) c.learningRate(), beta1 = (float) c.beta1(), psi = (float) c.momentumDecay();
            double muProduct = 1;
            float[] s = new float[StepScalars.SCALAR_STRIDE];
            for (int t = 1; t <= 200; t++) {
                double mu = beta1 * (1 - 0.5 * Math.pow(0.96, t * psi));
                double muNext = beta1 * (1 - 0.5 * Math.pow(0.96, (t + 1) * psi));
                muProduct *= mu;
                StepScalars.compute(c, t, s);
                String what = c + " step " + t;
                assertScalar(-lr * (1 - mu) / (1 - muProduct), s[NAdamAlgorithm.NEG_GRAD_COEF], what + " gradCoef");
                assertScalar(-lr * muNext / (1 - muProduct * muNext), s[NAdamAlgorithm.NEG_MOMENTUM_COEF],
                        what + " momentumCoef");
            }
            assertTrue(muProduct < 0x1p-60, c + ": the product must pass the point where fusedopt stops multiplying");
        }
    }

    /**
     * Stopping the product at 2^-60 changes no bit: the scalars equal those computed with the
     * product multiplied out to t in the same double operations, up to t = 200, and from there the
     * limit (product 0) holds for any t, here 10^6 and 2^40 (where a loop to t would never end).
     */
    @Test
    void stoppingTheProductChangesNoBit() {
        NAdam c = NAdam.builder().build();
        double lr = (float) c.learningRate(), beta1 = (float) c.beta1();
        double q = StepScalars.pow(0.96, (float) c.momentumDecay());
        float[] s = new float[StepScalars.SCALAR_STRIDE];
        double product = 1, qPower = 1;
        for (int t = 1; t <= 200; t++) {
            qPower = qPower * q;
            product = product * (beta1 * (1.0 - 0.5 * qPower));
            double qPowerT = StepScalars.powerBySquaring(q, t);
            double mu = beta1 * (1.0 - 0.5 * qPowerT);
            double muNext = beta1 * (1.0 - 0.5 * (qPowerT * q));
            StepScalars.compute(c, t, s);
            assertEquals((float) -(lr * (1.0 - mu) / (1.0 - product)), s[NAdamAlgorithm.NEG_GRAD_COEF], "step " + t);
            assertEquals((float) -(lr * muNext / (1.0 - product * muNext)), s[NAdamAlgorithm.NEG_MOMENTUM_COEF],
                    "step " + t);
        }
        for (long t : new long[] {1_000_000L, 1L << 40}) {
            double qPowerT = StepScalars.powerBySquaring(q, t);
            double mu = beta1 * (1.0 - 0.5 * qPowerT);
            double muNext = beta1 * (1.0 - 0.5 * (qPowerT * q));
            StepScalars.compute(c, t, s);
            assertEquals((float) -(lr * (1.0 - mu)), s[NAdamAlgorithm.NEG_GRAD_COEF], "step " + t);
            assertEquals((float) -(lr * muNext), s[NAdamAlgorithm.NEG_MOMENTUM_COEF], "step " + t);
        }
    }

    @Test
    void eachBadValueIsRefusedByName() {
        refused("learningRate", () -> NAdam.builder().optLearningRate(-1e-3).build());
        refused("beta1", () -> NAdam.builder().optBetas(1.0, 0.999).build());
        refused("beta2", () -> NAdam.builder().optBetas(0.9, -0.1).build());
        refused("epsilon", () -> NAdam.builder().optEpsilon(0).build());
        refused("weightDecay", () -> NAdam.builder().optWeightDecay(-0.01).build());
        refused("momentumDecay", () -> NAdam.builder().optMomentumDecay(-4e-3).build());
        refused("momentumDecay", () -> NAdam.builder().optMomentumDecay(Double.NaN).build());
        refused("momentumDecay", () -> NAdam.builder().optMomentumDecay(Double.POSITIVE_INFINITY).build());
    }

    private static void refused(String name, Supplier<NAdam> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().startsWith(name + " "), e.getMessage());
    }

    private static void assertScalar(double expected, float actual, String what) {
        assertTrue(Math.abs(actual - expected) <= SCALAR_BOUND * Math.abs(expected),
                what + ": expected " + expected + ", got " + actual);
    }

    /** Five steps on the CPU reference against {@link #pytorchFloat64}. */
    private static void assertFollowsFormula(NAdam c) {
        List<float[]> grads = List.of(GRADS);
        float[] actual = Trajectory.cpu(c, INITIAL, grads);
        double[] expected = pytorchFloat64(c, INITIAL, grads);
        for (int i = 0; i < INITIAL.length; i++) {
            double error = Math.abs(actual[i] - expected[i]);
            assertTrue(error <= PARAM_BOUND * Math.max(1, Math.abs(expected[i])),
                    c + " element " + i + ": float64 " + expected[i] + ", fusedopt " + actual[i] + ", error " + error);
        }
    }

    /**
     * {@code _single_tensor_nadam} of torch 2.1+, in float64, from the float32 hyper-parameters:
     * <pre>
     *   grad = -grad if maximize
     *   step += 1;  bias_correction2 = 1 - beta2 ** step
     *   if weight_decay != 0: decoupled ? param.mul_(1 - lr * weight_decay) : grad = grad + weight_decay * param
     *   mu = beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay));  mu_next likewise with step + 1
     *   mu_product *= mu
     *   exp_avg.lerp_(grad, 1 - beta1);  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
     *   denom = exp_avg_sq.div(bias_correction2).sqrt() + eps
     *   param.addcdiv_(grad, denom, value=-lr * (1 - mu) / (1 - mu_product))
     *   param.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1 - mu_product * mu_next))
     * </pre>
     */
    private static double[] pytorchFloat64(NAdam c, float[] initial, List<float[]> grads) {
        double lr = (float) c.learningRate(), beta1 = (float) c.beta1(), beta2 = (float) c.beta2();
        double eps = (float) c.epsilon(), weightDecay = (float) c.weightDecay(), psi = (float) c.momentumDecay();
        int n = initial.length;
        double[] p = new double[n], m = new double[n], v = new double[n];
        for (int i = 0; i < n; i++) p[i] = initial[i];
        double muProduct = 1;
        List<float[]> steps = new ArrayList<>(grads);
        for (int step = 1; step <= steps.size(); step++) {
            double bc2 = 1 - Math.pow(beta2, step);
            double mu = beta1 * (1 - 0.5 * Math.pow(0.96, step * psi));
            double muNext = beta1 * (1 - 0.5 * Math.pow(0.96, (step + 1) * psi));
            muProduct *= mu;
            for (int i = 0; i < n; i++) {
                double g = steps.get(step - 1)[i];
                if (c.maximize()) g = -g;
                if (weightDecay != 0) {
                    if (c.decoupledWeightDecay()) p[i] *= 1 - lr * weightDecay;
                    else g += weightDecay * p[i];
                }
                m[i] += (1 - beta1) * (g - m[i]);
                v[i] = beta2 * v[i] + (1 - beta2) * g * g;
                double denom = Math.sqrt(v[i] / bc2) + eps;
                p[i] += -lr * (1 - mu) / (1 - muProduct) * g / denom;
                p[i] += -lr * muNext / (1 - muProduct * muNext) * m[i] / denom;
            }
        }
        return p;
    }
}
