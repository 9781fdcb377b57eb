package io.fusedopt;

import static io.fusedopt.FormulaChecks.refused;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Lion's CPU reference against the update of google/automl {@code lion/lion_pytorch.py} (Chen et
 * al. 2023), computed here in float64 from the float32 hyper-parameters; and the sign's edge cases
 * (zero, NaN) on every backend.
 *
 * <p>Bound, per element after each of 6 steps: |p - p64| &lt;= 2^-21 * max(1, |p64|), and m within
 * 2^-21 of the largest |g|. Why: sign(c) is exact wherever the float32 c has the sign of the
 * float64 c, which the test asserts of its data (|c64| &gt; 2^-20 max|g|, while the float32 c is
 * off by a few 2^-24 (|beta1*m| + |(1-beta1)*g|) &lt;= a few 2^-24 max|g|), so a
 * step rounds p twice (the decay factor's product, then p - lr*sign as one FMA), half an ulp each,
 * and the decay factor itself carries 2^-24: 6 steps give at most 6 * 1.5 * 2^-24 * |p|.
 */
class LionFormulaTest {
    private static final int STEPS = 6;
    private static final int SIZE = 29;

    static Stream<Arguments> configurations() {
        return Stream.of(
                Arguments.of("defaults", Lion.builder().build()),
                Arguments.of("decay-maximize", Lion.builder().optLearningRate(1e-2).optWeightDecay(0.5).optMaximize(true).build()),
                Arguments.of("betas", Lion.builder().optLearningRate(3e-3).optBetas(0.5, 0.9).optWeightDecay(1e-2).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configurations")
    void referenceFollowsTheFormulaInFloat64(String name, Lion config) {
        Random random = new Random(name.hashCode());
        double lr = (float) config.learningRate(), beta1 = (float) config.beta1(), beta2 = (float) config.beta2();
        double weightDecay = (float) config.weightDecay();
        float[] initial = Scenario.gaussian(random, SIZE, 1f);
        double[] p = new double[SIZE], m = new double[SIZE];
        for (int i = 0; i < SIZE; i++) p[i] = initial[i];
        double maxAbsGrad = 0;
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer pBuffer = opt.allocate(SIZE);
            TensorBuffer gBuffer = opt.allocate(SIZE);
            pBuffer.copyFrom(initial);
            Parameter parameter = opt.addGroup().add("p", pBuffer, gBuffer);
            for (int t = 1; t <= STEPS; t++) {
                float[] grad = Scenario.gaussian(random, SIZE, t % 3 == 0 ? 1e-3f : 1f);
                gBuffer.copyFrom(grad);
                opt.step();
                for (int i = 0; i < SIZE; i++) {
                    // lion_pytorch.py: p.data.mul_(1 - lr*wd); update = exp_avg*beta1 + grad*(1 - beta1);
                    // p.add_(update.sign_(), alpha=-lr); exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2).
                    double g = config.maximize() ? -grad[i] : grad[i];
                    maxAbsGrad = Math.max(maxAbsGrad, Math.abs(g));
                    p[i] *= 1 - lr * weightDecay;
                    double c = m[i] * beta1 + g * (1 - beta1);
                    assertTrue(Math.abs(c) > 0x1p-20 * maxAbsGrad, name + ": the data must keep c away from 0, c = " + c);
                    p[i] -= lr * Math.signum(c);
                    m[i] = m[i] * beta2 + g * (1 - beta2);
                }
                String where = name + " step " + t;
                FormulaChecks.assertNear(p, pBuffer.toArray(), i -> 0x1p-21 * Math.max(1, Math.abs(p[i])), where + " param");
                double mBound = 0x1p-21 * maxAbsGrad;
                FormulaChecks.assertNear(m, parameter.state(StateKind.EXP_AVG).toArray(), i -> mBound, where + " exp_avg");
            }
        }
    }

    /** Gradients whose c = (1 - beta1)*g is +0, -0 (rounded to +0 by the FMA), NaN, > 0 and < 0. */
    private static final float[] EDGE_GRADS = {0f, -0f, Float.NaN, 3f, -3f, 1e-30f};
    /** Parameters: both zeros and both signs of 1, so that an unchanged p is checked bit for bit. */
    private static final float[] EDGE_PARAMS = {0f, -0f, 1f, -1f};

    /**
     * One step from m = 0 with lr = 0.25 (p -/+ 0.25 exact): a zero c leaves p's bits as they were
     * (-0 included: sign(0) is +0, and -0.25*(+0) + p = p), a NaN gradient makes p and m NaN, any
     * other c moves p by exactly lr against its sign. The elements run in the vector body and the
     * tail of CPU_FAST (37 of them).
     */
    private static void signEdgeCases(Backend backend) {
        int n = 37;
        float[] p0 = new float[n], g = new float[n];
        for (int i = 0; i < n; i++) {
            p0[i] = EDGE_PARAMS[i % EDGE_PARAMS.length];
            g[i] = EDGE_GRADS[i % EDGE_GRADS.length];
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Lion.builder().optLearningRate(0.25).build())) {
            TensorBuffer p = opt.allocate(n);
            TensorBuffer grad = opt.allocate(n);
            p.copyFrom(p0);
            grad.copyFrom(g);
            Parameter parameter = opt.addGroup().add("p", p, grad);
            opt.step();
            float[] p1 = p.toArray();
            float[] m1 = parameter.state(StateKind.EXP_AVG).toArray();
            for (int i = 0; i < n; i++) {
                String where = backend + " element " + i + " (p " + p0[i] + ", g " + g[i] + ")";
                if (Float.isNaN(g[i])) {
                    assertTrue(Float.isNaN(p1[i]) && Float.isNaN(m1[i]), where + ": NaN propagates, got " + p1[i] + ", " + m1[i]);
                } else if (g[i] == 0f) {
                    assertEquals(Float.floatToRawIntBits(p0[i]), Float.floatToRawIntBits(p1[i]), where + ": p unchanged, got " + p1[i]);
                } else {
                    assertEquals(p0[i] - Math.signum(g[i]) * 0.25f, p1[i], 0f, where);
                }
            }
        }
    }

    @Test
    void signEdgeCasesOnTheCpuBackends() {
        signEdgeCases(Backend.CPU);
        signEdgeCases(Backend.CPU_FAST);
    }

    @Test
    @Tag("gpu")
    void signEdgeCasesOnCuda() {
        GpuTests.assumeGpu();
        signEdgeCases(Backend.CUDA);
    }

    static Stream<Arguments> badHyperParameters() {
        return Stream.of(
                refused("learningRate", -1e-4, () -> Lion.builder().optLearningRate(-1e-4).build()),
                refused("learningRate", Double.POSITIVE_INFINITY, () -> Lion.builder().optLearningRate(Double.POSITIVE_INFINITY).build()),
                refused("beta1", 1.0, () -> Lion.builder().optBetas(1.0, 0.99).build()),
                refused("beta1", Double.NaN, () -> Lion.builder().optBetas(Double.NaN, 0.99).build()),
                refused("beta2", -0.5, () -> Lion.builder().optBetas(0.9, -0.5).build()),
                refused("beta2", 1.5, () -> Lion.builder().optBetas(0.9, 1.5).build()),
                refused("weightDecay", -0.1, () -> Lion.builder().optWeightDecay(-0.1).build()),
                // a non-zero value that would silently be 0 in float32
                refused("weightDecay", 1e-50, () -> Lion.builder().optWeightDecay(1e-50).build()));
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("badHyperParameters")
    void badHyperParameterIsRefusedNamingIt(String name, double value, Supplier<Lion> build) {
        FormulaChecks.assertRefused(name, value, build);
    }
}
