package io.fusedopt;

import static io.fusedopt.FormulaChecks.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.algorithms.AdEMAMixAlgorithm;
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
 * AdEMAMix's CPU reference against the update of bitsandbytes {@code bitsandbytes/optim/ademamix.py}
 * ({@code _ReferenceAdEMAMix.step}, with the alpha and beta3 schedulers of
 * {@code AdEMAMix.update_step}), computed here in float64 from the float32 hyper-parameters, step by
 * step, with {@link Math#pow}, {@link Math#log} and {@link Math#exp} (the library uses binary
 * exponentiation and its own log and exp):
 * <pre>
 *   alpha_t = t_alpha ? min(t*alpha/t_alpha, alpha) : alpha
 *   beta3_t = t_beta3 ? min(exp(ln(b1) ln(b3) / ((1 - t/t_beta3) ln(b3) + (t/t_beta3) ln(b1))), b3) : b3
 *   m1 = b1*m1 + (1 - b1)*g;  m2 = beta3_t*m2 + (1 - beta3_t)*g;  nu = b2*nu + (1 - b2)*g^2
 *   update = (m1/(1 - b1^t) + alpha_t*m2) / (sqrt(nu)/sqrt(1 - b2^t) + eps) + weight_decay*p
 *   p = p - lr*update
 * </pre>
 * then the same results on every backend for special values, and the validation of each
 * hyper-parameter.
 *
 * <p>Bound, per element after each of 8 steps: |p - p64| &lt;= 2^-20 * max(1, |p64|); m1 and m2 within
 * 2^-20 of the largest |g'| seen, nu within 2^-20 of its square. Why: a step rounds p once (the last
 * FMA, half an ulp: at most 2^-24 |p|), so 8 steps give 2^-21 |p|; the update, about ten operations
 * on states each a few roundings off, carries a relative error of a few 2^-22 on a value 100 times
 * smaller than p (lr = 1e-2, |update| of order 1). Each state gains at most 2^-24 of its own size
 * and 2^-24 of its new term per step, plus, for m2, the rounding of beta3_t to float32
 * (2^-25 |m2|): over 8 steps at most 8 * 1.5 * 2^-24 of the largest term, under 2^-20.
 */
class AdEMAMixFormulaTest {
    private static final int STEPS = 8;
    private static final int SIZE = 23;
    private static final double BOUND = 0x1p-20;

    static Stream<Arguments> configurations() {
        return Stream.of(
                Arguments.of("defaults", AdEMAMix.builder().optLearningRate(1e-2).build()),
                // The warm-ups end at steps 5 and 6 of 8; beta3 = 0.99 lets m2 weigh in 8 steps.
                Arguments.of("warmups-maximize", AdEMAMix.builder().optLearningRate(1e-2).optBetas(0.9, 0.999, 0.99)
                        .optAlpha(8).optAlphaWarmup(5).optBeta3Warmup(6).optWeightDecay(0.1).optMaximize(true).build()),
                Arguments.of("no-decay", AdEMAMix.builder().optLearningRate(1e-2).optBetas(0.5, 0.9, 0.95).optAlpha(2)
                        .optEpsilon(1e-3).optWeightDecay(0).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configurations")
    void referenceFollowsTheFormulaInFloat64(String name, AdEMAMix config) {
        Random random = new Random(name.hashCode());
        float[] initial = Scenario.gaussian(random, SIZE, 1f);
        Formula64 expected = new Formula64(config, initial);
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer p = opt.allocate(SIZE);
            TensorBuffer g = opt.allocate(SIZE);
            p.copyFrom(initial);
            Parameter parameter = opt.addGroup().add("p", p, g);
            for (int t = 1; t <= STEPS; t++) {
                float[] grad = Scenario.gaussian(random, SIZE, t % 3 == 0 ? 1e-3f : 1f);
                grad[0] = 0f; // m1 = m2 = nu = 0 every step: the update is eps-guarded 0 (plus the decay)
                g.copyFrom(grad);
                opt.step();
                expected.step(grad, t);
                String where = name + " step " + t;
                float[] scalars = new float[AdEMAMixAlgorithm.COUNT];
                StepScalars.compute(config, t, scalars);
                assertEquals((float) expected.alphaT, scalars[AdEMAMixAlgorithm.ALPHA_T], where + ": alpha_t");
                // StepScalars.log/exp against Math's: a few double ulps apart, so the float32 may differ by one ulp.
                assertEquals((float) expected.beta3T, scalars[AdEMAMixAlgorithm.BETA3_T],
                        Math.ulp((float) expected.beta3T), where + ": beta3_t");
                assertNear(expected.p, p.toArray(), i -> BOUND * Math.max(1, Math.abs(expected.p[i])), where + " param");
                assertNear(expected.m1, parameter.state(StateKind.M1).toArray(), i -> BOUND * expected.maxAbsGrad,
                        where + " m1");
                assertNear(expected.m2, parameter.state(StateKind.M2).toArray(), i -> BOUND * expected.maxAbsGrad,
                        where + " m2");
                assertNear(expected.nu, parameter.state(StateKind.NU).toArray(),
                        i -> BOUND * expected.maxAbsGrad * expected.maxAbsGrad, where + " nu");
            }
        }
    }

    /** bitsandbytes' update in float64, one element at a time. */
    private static final class Formula64 {
        final double lr, beta1, beta2, beta3, alpha, eps, weightDecay, alphaWarmup, beta3Warmup;
        final boolean maximize;
        final double[] p, m1, m2, nu;
        double maxAbsGrad, alphaT, beta3T;

        Formula64(AdEMAMix c, float[] initial) {
            lr = f32(c.learningRate());
            beta1 = f32(c.beta1());
            beta2 = f32(c.beta2());
            beta3 = f32(c.beta3());
            alpha = f32(c.alpha());
            eps = f32(c.epsilon());
            weightDecay = f32(c.weightDecay());
            alphaWarmup = f32(c.alphaWarmup());
            beta3Warmup = f32(c.beta3Warmup());
            maximize = c.maximize();
            p = new double[initial.length];
            for (int i = 0; i < p.length; i++) p[i] = initial[i];
            m1 = new double[p.length];
            m2 = new double[p.length];
            nu = new double[p.length];
        }

        void step(float[] grad, int t) {
            double bc1 = 1 - Math.pow(beta1, t);
            double bc2 = 1 - Math.pow(beta2, t);
            alphaT = alphaWarmup != 0 ? Math.min(t * alpha / alphaWarmup, alpha) : alpha;
            if (beta3Warmup != 0) {
                double lnBeta1 = Math.log(beta1), lnBeta3 = Math.log(beta3), scale = t / beta3Warmup;
                beta3T = Math.min(Math.exp(lnBeta1 * lnBeta3 / ((1 - scale) * lnBeta3 + scale * lnBeta1)), beta3);
            } else {
                beta3T = beta3;
            }
            for (int i = 0; i < p.length; i++) {
                double g = maximize ? -grad[i] : grad[i];
                maxAbsGrad = Math.max(maxAbsGrad, Math.abs(g));
                m1[i] = beta1 * m1[i] + (1 - beta1) * g;
                m2[i] = beta3T * m2[i] + (1 - beta3T) * g;
                nu[i] = beta2 * nu[i] + (1 - beta2) * g * g;
                double denom = Math.sqrt(nu[i]) / Math.sqrt(bc2) + eps;
                double update = (m1[i] / bc1 + alphaT * m2[i]) / denom + weightDecay * p[i];
                p[i] -= lr * update;
            }
        }
    }

    /**
     * The warm-ups' shapes, from the per-step scalars: alpha_t rises linearly to alpha and stays
     * there; beta3_t starts near beta1 (at t = 0 the formula gives beta1 exactly), rises strictly to
     * beta3 at t = beta3Warmup and stays there; without warm-ups both are the configured values at
     * every step.
     */
    @Test
    void theWarmupsRiseToTheirValuesAndStayThere() {
        AdEMAMix warm = AdEMAMix.builder().optAlpha(5).optAlphaWarmup(4).optBeta3Warmup(10).build();
        AdEMAMix off = AdEMAMix.builder().optAlpha(5).build();
        float[] s = new float[AdEMAMixAlgorithm.COUNT];
        float previousBeta3 = (float) warm.beta1();
        for (long t = 1; t <= 16; t++) {
            StepScalars.compute(warm, t, s);
            assertEquals(Math.min(t * 5 / 4.0, 5), s[AdEMAMixAlgorithm.ALPHA_T], 0, "alpha_t at step " + t);
            float beta3T = s[AdEMAMixAlgorithm.BETA3_T];
            if (t < 10) {
                assertTrue(beta3T > previousBeta3 && beta3T < (float) warm.beta3(), "beta3_t at step " + t + ": " + beta3T);
            } else {
                assertEquals((float) warm.beta3(), beta3T, 0, "beta3_t at step " + t);
            }
            previousBeta3 = beta3T;
            StepScalars.compute(off, t, s);
            assertEquals(5f, s[AdEMAMixAlgorithm.ALPHA_T], 0, "alpha_t without warm-up at step " + t);
            assertEquals((float) off.beta3(), s[AdEMAMixAlgorithm.BETA3_T], 0, "beta3_t without warm-up at step " + t);
            assertEquals((float) (1 - (double) (float) off.beta3()), s[AdEMAMixAlgorithm.ONE_MINUS_BETA3_T], 0);
        }
    }

    /** Every flag, both sides of each warm-up within 4 steps, and beta1 = beta3 (the warm-up's flat case). */
    private static List<AdEMAMix> variants() {
        return List.of(AdEMAMix.builder().build(),
                AdEMAMix.builder().optAlphaWarmup(2).optBeta3Warmup(3).optMaximize(true).optWeightDecay(0.5).build(),
                AdEMAMix.builder().optBetas(0.9, 0.99, 0.9).optBeta3Warmup(2).optWeightDecay(0).optEpsilon(1e-30).build());
    }

    @Test
    void specialValuesGiveTheReferencesResultsOnTheFastCpuBackend() {
        for (AdEMAMix c : variants()) {
            assertBackendEqualsReference(Backend.CPU_FAST, c, specialParameters(67, 7), specialGradients(67, 4, 9));
        }
    }

    @Test
    @Tag("gpu")
    void specialValuesGiveTheReferencesResultsOnCuda() {
        GpuTests.assumeGpu();
        for (AdEMAMix c : variants()) {
            assertBackendEqualsReference(Backend.CUDA, c, specialParameters(67, 7), specialGradients(67, 4, 9));
        }
    }

    static Stream<Arguments> badHyperParameters() {
        return Stream.of(
                refused("learningRate", -1e-3, () -> AdEMAMix.builder().optLearningRate(-1e-3).build()),
                refused("learningRate", Double.NaN, () -> AdEMAMix.builder().optLearningRate(Double.NaN).build()),
                refused("beta1", 1.0, () -> AdEMAMix.builder().optBetas(1.0, 0.999, 0.9999).build()),
                refused("beta1", -0.1, () -> AdEMAMix.builder().optBetas(-0.1, 0.999, 0.9999).build()),
                refused("beta2", 1.0, () -> AdEMAMix.builder().optBetas(0.9, 1.0, 0.9999).build()),
                refused("beta3", 1.0, () -> AdEMAMix.builder().optBetas(0.9, 0.999, 1.0).build()),
                // rounds to 1 in float32
                refused("beta3", 0.99999999, () -> AdEMAMix.builder().optBetas(0.9, 0.999, 0.99999999).build()),
                refused("alpha", -1.0, () -> AdEMAMix.builder().optAlpha(-1).build()),
                refused("alpha", Double.POSITIVE_INFINITY, () -> AdEMAMix.builder().optAlpha(Double.POSITIVE_INFINITY).build()),
                refused("epsilon", 0.0, () -> AdEMAMix.builder().optEpsilon(0).build()),
                refused("epsilon", -1e-8, () -> AdEMAMix.builder().optEpsilon(-1e-8).build()),
                refused("weightDecay", -0.01, () -> AdEMAMix.builder().optWeightDecay(-0.01).build()),
                // a non-zero value that would silently be 0 in float32
                refused("weightDecay", 1e-50, () -> AdEMAMix.builder().optWeightDecay(1e-50).build()),
                refused("alphaWarmup", 0.5, () -> AdEMAMix.builder().optAlphaWarmup(0.5).build()),
                refused("alphaWarmup", -10.0, () -> AdEMAMix.builder().optAlphaWarmup(-10).build()),
                refused("alphaWarmup", Double.NaN, () -> AdEMAMix.builder().optAlphaWarmup(Double.NaN).build()),
                refused("beta3Warmup", 0.25, () -> AdEMAMix.builder().optBeta3Warmup(0.25).build()),
                refused("beta3Warmup", Double.POSITIVE_INFINITY,
                        () -> AdEMAMix.builder().optBeta3Warmup(Double.POSITIVE_INFINITY).build()),
                // the beta3 warm-up takes log(beta1) and rises from beta1 to beta3
                refused("beta1", 0.0, () -> AdEMAMix.builder().optBetas(0, 0.999, 0.9999).optBeta3Warmup(100).build()),
                refused("beta1", 0.95, () -> AdEMAMix.builder().optBetas(0.95, 0.999, 0.9).optBeta3Warmup(100).build()));
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("badHyperParameters")
    void badHyperParameterIsRefusedNamingIt(String name, double value, Supplier<AdEMAMix> build) {
        assertRefused(name, value, build);
    }

    /** Without a beta3 warm-up, beta1 = 0 and beta1 &gt; beta3 are allowed (no log is taken). */
    @Test
    void beta1IsFreeWithoutABeta3Warmup() {
        AdEMAMix.builder().optBetas(0, 0.999, 0.9999).optAlphaWarmup(10).build();
        AdEMAMix.builder().optBetas(0.95, 0.999, 0.9).build();
    }

    @Test
    void defaultsAreBitsandbytes() {
        assertEquals(new AdEMAMix(1e-3, 0.9, 0.999, 0.9999, 5, 1e-8, 1e-2, 0, 0, false), AdEMAMix.builder().build());
        AdEMAMix c = AdEMAMix.builder().optLearningRate(0.01).optBetas(0.8, 0.99, 0.999).optAlpha(3).optEpsilon(1e-6)
                .optWeightDecay(0.2).optAlphaWarmup(100).optBeta3Warmup(200).optMaximize(true).build();
        assertEquals(c, c.toBuilder().build());
        assertEquals(List.of("m1", "m2", "nu"), c.stateKinds().stream().map(StateKind::stateName).toList());
    }
}
