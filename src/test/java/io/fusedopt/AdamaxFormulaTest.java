package io.fusedopt;

import static io.fusedopt.FormulaChecks.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@link Adamax} on the CPU reference against a float64 model written here from PyTorch 1.13's
 * {@code _single_tensor_adamax} (torch/optim/adamax.py):
 * <pre>
 *   grad = -grad if maximize;  grad = grad + weight_decay * param
 *   exp_avg = beta1 * exp_avg + (1 - beta1) * grad
 *   exp_inf = amax(beta2 * exp_inf, |grad| + eps)
 *   param = param - lr / (1 - beta1^step) * exp_avg / exp_inf
 * </pre>
 * within the float32 bound of {@link FormulaChecks}; then NaN propagation through the max, the same
 * results on every backend for special values, and the validation of each hyper-parameter.
 */
class AdamaxFormulaTest {
    private static final int STEPS = 6;
    /** Gradient sizes per step: the small ones leave the max to beta2 * exp_inf, the large ones to |g| + eps. */
    private static final double[] GRADIENT_SCALE = {1, 0.01, 1, 0.001, 2, 0.5};

    @Test
    void followsPyTorchsFormulaWithTheDefaultsAndALargerRate() {
        check(Adamax.builder().optLearningRate(0.1).build());
    }

    /** eps = 0.1 makes where eps enters (inside the max, not outside it) visible above the bound. */
    @Test
    void followsPyTorchsFormulaWithWeightDecayMaximizeAndALargeEps() {
        check(Adamax.builder().optLearningRate(0.05).optBetas(0.8, 0.99).optEpsilon(0.1).optWeightDecay(0.1)
                .optMaximize(true).build());
    }

    private static void check(Adamax c) {
        int n = 8;
        Random random = new Random(11);
        float[] initial = new float[n];
        for (int i = 0; i < n; i++) initial[i] = (float) random.nextGaussian();
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < STEPS; t++) {
            float[] g = new float[n];
            for (int i = 0; i < n; i++) g[i] = (float) (random.nextGaussian() * GRADIENT_SCALE[t]);
            grads.add(g);
        }
        List<float[]> actual = Trajectory.withStates(Backend.CPU, c, initial, grads);

        double lr = f32(c.learningRate()), beta1 = f32(c.beta1()), beta2 = f32(c.beta2());
        double eps = f32(c.epsilon()), weightDecay = f32(c.weightDecay());
        boolean decayedWon = false;
        for (int i = 0; i < n; i++) {
            double[] p = new double[STEPS + 1];
            p[0] = initial[i];
            double expAvg = 0, expInf = 0, largestGrad = 0;
            for (int t = 1; t <= STEPS; t++) {
                double grad = grads.get(t - 1)[i];
                if (c.maximize()) grad = -grad;
                grad = grad + weightDecay * p[t - 1];
                largestGrad = Math.max(largestGrad, Math.abs(grad));
                expAvg = beta1 * expAvg + (1 - beta1) * grad;
                double decayed = beta2 * expInf;
                double candidate = Math.abs(grad) + eps;
                decayedWon |= decayed > candidate;
                expInf = Math.max(decayed, candidate);
                double clr = lr / (1 - Math.pow(beta1, t));
                p[t] = p[t - 1] - clr * expAvg / expInf;
            }
            String where = "element " + i + " after " + STEPS + " steps of " + c;
            assertNear(where + ": param", p[STEPS], actual.get(0)[i], parameterTolerance(p));
            assertNear(where + ": exp_avg", expAvg, actual.get(1)[i], stateTolerance(STEPS, largestGrad));
            assertNear(where + ": exp_inf", expInf, actual.get(2)[i], stateTolerance(STEPS, expInf));
        }
        assertTrue(decayedWon, "no step left the max to beta2 * exp_inf");
    }

    /**
     * A NaN reaches exp_inf from the gradient and stays there: max(beta2 * u, |g| + eps) takes a NaN
     * from either side (fmaxf, or a comparison that keeps the old value when the new one is NaN,
     * would drop it).
     */
    @Test
    void aNaNGradientStaysInExpInf() {
        Adamax c = Adamax.builder().build();
        float[] initial = {1f, 1f};
        List<float[]> grads = List.of(new float[] {1f, 1f}, new float[] {Float.NaN, 1e-3f}, new float[] {0.5f, 0.5f});
        for (Backend backend : List.of(Backend.CPU, Backend.CPU_FAST)) {
            List<float[]> after = Trajectory.withStates(backend, c, initial, grads);
            assertTrue(Float.isNaN(after.get(2)[0]), backend + ": exp_inf " + after.get(2)[0]);
            assertTrue(Float.isNaN(after.get(0)[0]), backend + ": param " + after.get(0)[0]);
            assertTrue(Float.isFinite(after.get(2)[1]) && Float.isFinite(after.get(0)[1]), backend + ": the other element");
        }
    }

    @Test
    void specialValuesGiveTheReferencesResultsOnTheFastCpuBackend() {
        for (Adamax c : variants()) {
            assertBackendEqualsReference(Backend.CPU_FAST, c, specialParameters(67, 3), specialGradients(67, 4, 5));
        }
    }

    @Test
    @Tag("gpu")
    void specialValuesGiveTheReferencesResultsOnCuda() {
        GpuTests.assumeGpu();
        for (Adamax c : variants()) {
            assertBackendEqualsReference(Backend.CUDA, c, specialParameters(67, 3), specialGradients(67, 4, 5));
        }
    }

    private static List<Adamax> variants() {
        return List.of(Adamax.builder().build(),
                Adamax.builder().optWeightDecay(0.1).optMaximize(true).optEpsilon(1e-30).build());
    }

    @Test
    void eachHyperParameterOutsideItsDomainIsRefusedByName() {
        assertRefused("learningRate", -1e-3, () -> Adamax.builder().optLearningRate(-1e-3).build());
        assertRefused("learningRate", Double.NaN, () -> Adamax.builder().build().withLearningRate(Double.NaN));
        assertRefused("beta1", 1.0, () -> Adamax.builder().optBetas(1.0, 0.999).build());
        assertRefused("beta1", -0.1, () -> Adamax.builder().optBetas(-0.1, 0.999).build());
        assertRefused("beta2", 0.999999999, () -> Adamax.builder().optBetas(0.9, 0.999999999).build()); // 1 in float32
        assertRefused("beta2", Double.NaN, () -> Adamax.builder().optBetas(0.9, Double.NaN).build());
        assertRefused("epsilon", 0.0, () -> Adamax.builder().optEpsilon(0).build());
        assertRefused("epsilon", -1e-8, () -> Adamax.builder().optEpsilon(-1e-8).build());
        assertRefused("epsilon", 1e-50, () -> Adamax.builder().optEpsilon(1e-50).build()); // 0 in float32
        assertRefused("weightDecay", -0.01, () -> Adamax.builder().optWeightDecay(-0.01).build());
        assertRefused("weightDecay", Double.POSITIVE_INFINITY,
                () -> Adamax.builder().optWeightDecay(Double.POSITIVE_INFINITY).build());
    }

    @Test
    void defaultsArePyTorchs() {
        assertEquals(new Adamax(2e-3, 0.9, 0.999, 1e-8, 0, false), Adamax.builder().build());
        Adamax c = Adamax.builder().optLearningRate(0.01).optBetas(0.5, 0.6).optEpsilon(1e-3).optWeightDecay(0.2)
                .optMaximize(true).build();
        assertEquals(c, c.toBuilder().build());
        assertEquals(List.of(StateKind.EXP_AVG, StateKind.EXP_INF), c.stateKinds());
        assertEquals(List.of("exp_avg", "exp_inf"), c.stateKinds().stream().map(StateKind::stateName).toList());
    }
}
