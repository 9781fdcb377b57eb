package io.fusedopt;

import static io.fusedopt.FormulaChecks.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@link Adadelta} on the CPU reference against a float64 model written here from PyTorch 1.13's
 * {@code _single_tensor_adadelta} (torch/optim/adadelta.py):
 * <pre>
 *   grad = -grad if maximize;  grad = grad + weight_decay * param
 *   square_avg = rho * square_avg + (1 - rho) * grad^2
 *   std = sqrt(square_avg + eps)
 *   delta = sqrt(acc_delta + eps) / std * grad
 *   acc_delta = rho * acc_delta + (1 - rho) * delta^2
 *   param = param - lr * delta
 * </pre>
 * within the float32 bound of {@link FormulaChecks}; then the same results on every backend for
 * special values, and the validation of each hyper-parameter.
 */
class AdadeltaFormulaTest {
    private static final int STEPS = 6;
    private static final double[] GRADIENT_SCALE = {1, 0.01, 1, 0.001, 2, 0.5};

    @Test
    void followsPyTorchsFormulaWithTheDefaults() {
        check(Adadelta.builder().build());
    }

    @Test
    void followsPyTorchsFormulaWithWeightDecayMaximizeAndALargeEps() {
        check(Adadelta.builder().optLearningRate(0.5).optRho(0.5).optEpsilon(1e-2).optWeightDecay(0.1)
                .optMaximize(true).build());
    }

    /** rho = 0 (no memory) and rho = 1 (the averages stay 0, delta = g) are PyTorch's bounds, both allowed. */
    @Test
    void followsPyTorchsFormulaAtBothEndsOfRho() {
        check(Adadelta.builder().optLearningRate(0.1).optRho(0).build());
        check(Adadelta.builder().optLearningRate(0.1).optRho(1).build());
    }

    private static void check(Adadelta c) {
        int n = 8;
        Random random = new Random(13);
        float[] initial = new float[n];
        for (int i = 0; i < n; i++) initial[i] = (float) random.nextGaussian();
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < STEPS; t++) {
            float[] g = new float[n];
            for (int i = 0; i < n; i++) g[i] = (float) (random.nextGaussian() * GRADIENT_SCALE[t]);
            grads.add(g);
        }
        List<float[]> actual = Trajectory.withStates(Backend.CPU, c, initial, grads);

        double lr = f32(c.learningRate()), rho = f32(c.rho()), eps = f32(c.epsilon()), weightDecay = f32(c.weightDecay());
        for (int i = 0; i < n; i++) {
            double[] p = new double[STEPS + 1];
            p[0] = initial[i];
            double squareAvg = 0, accDelta = 0;
            for (int t = 1; t <= STEPS; t++) {
                double grad = grads.get(t - 1)[i];
                if (c.maximize()) grad = -grad;
                grad = grad + weightDecay * p[t - 1];
                squareAvg = rho * squareAvg + (1 - rho) * grad * grad;
                double std = Math.sqrt(squareAvg + eps);
                double delta = Math.sqrt(accDelta + eps) / std * grad;
                accDelta = rho * accDelta + (1 - rho) * delta * delta;
                p[t] = p[t - 1] - lr * delta;
            }
            String where = "element " + i + " after " + STEPS + " steps of " + c;
            assertNear(where + ": param", p[STEPS], actual.get(0)[i], parameterTolerance(p));
            // Sums of non-negative terms: the bound is relative to the value.
            assertNear(where + ": square_avg", squareAvg, actual.get(1)[i], stateTolerance(STEPS, squareAvg));
            assertNear(where + ": acc_delta", accDelta, actual.get(2)[i], stateTolerance(STEPS, accDelta));
        }
    }

    @Test
    void specialValuesGiveTheReferencesResultsOnTheFastCpuBackend() {
        for (Adadelta c : variants()) {
            assertBackendEqualsReference(Backend.CPU_FAST, c, specialParameters(67, 7), specialGradients(67, 4, 9));
        }
    }

    @Test
    @Tag("gpu")
    void specialValuesGiveTheReferencesResultsOnCuda() {
        GpuTests.assumeGpu();
        for (Adadelta c : variants()) {
            assertBackendEqualsReference(Backend.CUDA, c, specialParameters(67, 7), specialGradients(67, 4, 9));
        }
    }

    private static List<Adadelta> variants() {
        return List.of(Adadelta.builder().build(),
                Adadelta.builder().optRho(0.99).optEpsilon(1e-30).optWeightDecay(0.1).optMaximize(true).build());
    }

    @Test
    void eachHyperParameterOutsideItsDomainIsRefusedByName() {
        assertRefused("learningRate", -1.0, () -> Adadelta.builder().optLearningRate(-1).build());
        assertRefused("learningRate", Double.POSITIVE_INFINITY,
                () -> Adadelta.builder().build().withLearningRate(Double.POSITIVE_INFINITY));
        assertRefused("rho", 1.5, () -> Adadelta.builder().optRho(1.5).build());
        assertRefused("rho", -0.01, () -> Adadelta.builder().optRho(-0.01).build());
        assertRefused("rho", Double.NaN, () -> Adadelta.builder().optRho(Double.NaN).build());
        assertRefused("epsilon", 0.0, () -> Adadelta.builder().optEpsilon(0).build());
        assertRefused("epsilon", -1e-6, () -> Adadelta.builder().optEpsilon(-1e-6).build());
        assertRefused("epsilon", 1e-50, () -> Adadelta.builder().optEpsilon(1e-50).build()); // 0 in float32
        assertRefused("weightDecay", -1.0, () -> Adadelta.builder().optWeightDecay(-1).build());
    }

    @Test
    void defaultsArePyTorchs() {
        assertEquals(new Adadelta(1.0, 0.9, 1e-6, 0, false), Adadelta.builder().build());
        Adadelta c = Adadelta.builder().optLearningRate(0.01).optRho(0.5).optEpsilon(1e-3).optWeightDecay(0.2)
                .optMaximize(true).build();
        assertEquals(c, c.toBuilder().build());
        assertEquals(List.of("square_avg", "acc_delta"), c.stateKinds().stream().map(StateKind::stateName).toList());
    }
}
