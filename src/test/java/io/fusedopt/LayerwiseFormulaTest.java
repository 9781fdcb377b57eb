package io.fusedopt;

import static io.fusedopt.FormulaChecks.f32;
import static io.fusedopt.FormulaChecks.refused;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.SegmentTable;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * LAMB and LARS, the layer-wise algorithms, on the CPU reference against float64 models of their
 * cited sources (Apex's FusedLAMB, Lightning's LARS: the formulas in {@link Lamb} and {@link Lars}),
 * computed here from the float32 hyper-parameters. One group holds a tensor of two chunks (its norms
 * sum the chunks' partial sums), a small tensor whose gradient is all zero at step 2 (a zero
 * gradient norm) and a zero-initialized tensor (a zero parameter norm at step 1): each tensor's
 * trust ratio must be its own. Bound: {@link FormulaChecks#parameterTolerance}, as for every
 * algorithm; a ratio taken from one chunk instead of the tensor, from the wrong tensor, or not
 * falling back where a norm is 0 moves the parameters by orders of magnitude more.
 *
 * <p>Then the fall-backs bit for bit (a zero tensor's first LARS step is -lr * g exactly), special
 * values (NaN, infinities, zeros, subnormals) bit for bit on every backend, and every
 * hyper-parameter refused by name.
 */
class LayerwiseFormulaTest {
    /** Two chunks, a small tensor, a zero-initialized tensor. */
    private static final int[] SIZES = {(int) SegmentTable.CHUNK_ELEMENTS + 37, 29, 7};
    private static final int ZERO_GRADIENT_TENSOR = 1, ZERO_GRADIENT_STEP = 2, ZERO_TENSOR = 2;
    private static final int STEPS = 4;

    static Stream<Arguments> configurations() {
        return Stream.of(
                Arguments.of("lamb", Lamb.builder().optLearningRate(0.01).build()),
                Arguments.of("lamb-l2-no-bias-correction-maximize", Lamb.builder().optLearningRate(0.01)
                        .optWeightDecayMode(Lamb.WeightDecay.L2).optWeightDecay(0.05).optBiasCorrection(false)
                        .optMaximize(true).build()),
                Arguments.of("lamb-no-decay", Lamb.builder().optLearningRate(0.01).optWeightDecay(0).build()),
                Arguments.of("lamb-nvlamb", Lamb.builder().optLearningRate(0.01).optWeightDecay(0)
                        .optTrustRatioWithoutWeightDecay(true).optBetas(0.8, 0.99).build()),
                Arguments.of("lars", Lars.builder().optLearningRate(0.5).optMomentum(0.9).optWeightDecay(1e-3)
                        .optTrustCoefficient(0.02).build()),
                Arguments.of("lars-nesterov-maximize", Lars.builder().optLearningRate(0.5).optMomentum(0.9)
                        .optNesterov(true).optWeightDecay(1e-2).optTrustCoefficient(0.02).optMaximize(true).build()),
                Arguments.of("lars-dampening", Lars.builder().optLearningRate(0.5).optMomentum(0.8).optDampening(0.25)
                        .optTrustCoefficient(0.05).optEpsilon(1e-3).build()),
                Arguments.of("lars-skip-no-momentum", Lars.builder().optLearningRate(0.5).optWeightDecay(1e-2)
                        .optSkipTrustRatio(true).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configurations")
    void referenceFollowsTheFormulaInFloat64(String name, OptimizerConfig config) {
        Random random = new Random(name.hashCode());
        List<float[]> initial = new ArrayList<>();
        for (int t = 0; t < SIZES.length; t++) initial.add(t == ZERO_TENSOR ? new float[SIZES[t]] : Scenario.gaussian(random, SIZES[t], 1f));
        Model model = config instanceof Lamb lamb ? new LambModel(lamb, initial) : new LarsModel((Lars) config, initial);
        List<double[][]> history = new ArrayList<>(); // [tensor][step][element]
        for (int t = 0; t < SIZES.length; t++) history.add(new double[STEPS + 1][]);
        for (int t = 0; t < SIZES.length; t++) history.get(t)[0] = model.params.get(t).clone();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            ParamGroup group = opt.addGroup();
            List<TensorBuffer> params = new ArrayList<>(), grads = new ArrayList<>();
            for (int t = 0; t < SIZES.length; t++) {
                TensorBuffer p = opt.allocate(SIZES[t]);
                TensorBuffer g = opt.allocate(SIZES[t]);
                p.copyFrom(initial.get(t));
                group.add("t" + t, p, g);
                params.add(p);
                grads.add(g);
            }
            for (int step = 1; step <= STEPS; step++) {
                List<float[]> g = new ArrayList<>();
                for (int t = 0; t < SIZES.length; t++) {
                    boolean zero = t == ZERO_GRADIENT_TENSOR && step == ZERO_GRADIENT_STEP;
                    g.add(zero ? new float[SIZES[t]] : Scenario.gaussian(random, SIZES[t], step % 2 == 0 ? 0.1f : 1f));
                    grads.get(t).copyFrom(g.get(t));
                }
                opt.step();
                model.step(step, g);
                for (int t = 0; t < SIZES.length; t++) {
                    history.get(t)[step] = model.params.get(t).clone();
                    double[][] h = history.get(t);
                    int last = step;
                    FormulaChecks.assertNear(model.params.get(t), params.get(t).toArray(), i -> {
                        double[] element = new double[last + 1];
                        for (int s = 0; s <= last; s++) element[s] = h[s][i];
                        return FormulaChecks.parameterTolerance(element);
                    }, name + " step " + step + " tensor " + t);
                }
            }
        }
    }

    /** A float64 model of one group of tensors. */
    private abstract static class Model {
        final List<double[]> params = new ArrayList<>();

        Model(List<float[]> initial) {
            for (float[] p : initial) {
                double[] copy = new double[p.length];
                for (int i = 0; i < p.length; i++) copy[i] = p[i];
                params.add(copy);
            }
        }

        abstract void step(int t, List<float[]> grads);

        static double norm(double[] x) {
            double sum = 0;
            for (double v : x) sum += v * v;
            return Math.sqrt(sum);
        }
    }

    /** Apex FusedLAMB (fused_lamb.py, multi_tensor_lamb.cu), as {@link Lamb} writes it. */
    private static final class LambModel extends Model {
        private final Lamb c;
        private final List<double[]> m = new ArrayList<>(), v = new ArrayList<>();

        LambModel(Lamb c, List<float[]> initial) {
            super(initial);
            this.c = c;
            for (float[] p : initial) {
                m.add(new double[p.length]);
                v.add(new double[p.length]);
            }
        }

        @Override
        void step(int t, List<float[]> grads) {
            double lr = f32(c.learningRate()), beta1 = f32(c.beta1()), beta2 = f32(c.beta2()), eps = f32(c.epsilon());
            double wd = f32(c.weightDecay());
            double bc1 = c.biasCorrection() ? 1 - Math.pow(beta1, t) : 1, bc2 = c.biasCorrection() ? 1 - Math.pow(beta2, t) : 1;
            boolean trust = wd != 0 || c.trustRatioWithoutWeightDecay();
            for (int k = 0; k < params.size(); k++) {
                double[] p = params.get(k), mk = m.get(k), vk = v.get(k), u = new double[p.length];
                for (int i = 0; i < p.length; i++) {
                    double g = c.maximize() ? -grads.get(k)[i] : grads.get(k)[i];
                    if (c.weightDecayMode() == Lamb.WeightDecay.L2) g += wd * p[i];
                    mk[i] = beta1 * mk[i] + (1 - beta1) * g;
                    vk[i] = beta2 * vk[i] + (1 - beta2) * g * g;
                    u[i] = (mk[i] / bc1) / (Math.sqrt(vk[i] / bc2) + eps);
                    if (c.weightDecayMode() == Lamb.WeightDecay.DECOUPLED) u[i] += wd * p[i];
                }
                double paramNorm = norm(p), updateNorm = norm(u);
                double ratio = trust && paramNorm != 0 && updateNorm != 0 ? lr * paramNorm / updateNorm : lr;
                for (int i = 0; i < p.length; i++) p[i] -= ratio * u[i];
            }
        }
    }

    /** Lightning-bolts LARS (pl_bolts/optimizers/lars.py), as {@link Lars} writes it. */
    private static final class LarsModel extends Model {
        private final Lars c;
        private final List<double[]> buffers = new ArrayList<>();

        LarsModel(Lars c, List<float[]> initial) {
            super(initial);
            this.c = c;
            for (float[] p : initial) buffers.add(new double[p.length]);
        }

        @Override
        void step(int t, List<float[]> grads) {
            double lr = f32(c.learningRate()), mu = f32(c.momentum()), dampening = f32(c.dampening());
            double wd = f32(c.weightDecay()), tc = f32(c.trustCoefficient()), eps = f32(c.epsilon());
            for (int k = 0; k < params.size(); k++) {
                double[] p = params.get(k), b = buffers.get(k), g = new double[p.length];
                for (int i = 0; i < p.length; i++) g[i] = c.maximize() ? -grads.get(k)[i] : grads.get(k)[i];
                double paramNorm = norm(p), gradNorm = norm(g);
                double ratio = !c.skipTrustRatio() && paramNorm != 0 && gradNorm != 0
                        ? tc * paramNorm / (gradNorm + wd * paramNorm + eps) : 1;
                for (int i = 0; i < p.length; i++) {
                    double d = (g[i] + wd * p[i]) * ratio;
                    if (mu != 0) {
                        b[i] = t == 1 ? d : mu * b[i] + (1 - dampening) * d;
                        d = c.nesterov() ? d + mu * b[i] : b[i];
                    }
                    p[i] -= lr * d;
                }
            }
        }
    }

    /**
     * Where a norm is 0 the ratio falls back, exactly: a zero tensor's first LARS step is
     * fma(-lr, g, 0) = -lr*g (ratio 1), its first LAMB step -lr*u with u = m/(sqrt(v) + eps) of
     * Adam's first step (ratio lr); beside it, a non-zero tensor takes its own ratio.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aZeroNormFallsBackToTheUnscaledStep(Backend backend) {
        assertZeroNormFallBack(backend);
    }

    @Test
    @Tag("gpu")
    void aZeroNormFallsBackToTheUnscaledStepOnCuda() {
        GpuTests.assumeGpu();
        assertZeroNormFallBack(Backend.CUDA);
    }

    private static void assertZeroNormFallBack(Backend backend) {
        float[] g = {0.5f, -2f, 0.25f, 3f, -0.125f, 1f, -1f, 0.75f, 4f};
        float lr = 0.5f;
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Lars.builder().optLearningRate(lr).optTrustCoefficient(0.02).build())) {
            TensorBuffer zero = opt.allocate(g.length), zeroGrad = opt.allocate(g.length);
            TensorBuffer other = opt.allocate(g.length), otherGrad = opt.allocate(g.length);
            zeroGrad.copyFrom(g);
            other.copyFrom(g);
            otherGrad.copyFrom(g);
            ParamGroup group = opt.addGroup();
            group.add("zero", zero, zeroGrad);
            group.add("other", other, otherGrad);
            opt.step();
            float[] p = zero.toArray(), q = other.toArray();
            for (int i = 0; i < g.length; i++) {
                assertEquals(-lr * g[i], p[i], 0f, backend + " LARS zero tensor element " + i);
                // ||p|| = ||g||: ratio = 0.02 * ||g|| / (||g|| + 1e-8), close to 0.02
                assertEquals(g[i] - lr * 0.02f * g[i], q[i], 1e-6f * Math.abs(g[i]), backend + " LARS other tensor element " + i);
            }
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Lamb.builder().optLearningRate(lr).optEpsilon(1e-6).build())) {
            TensorBuffer zero = opt.allocate(g.length), zeroGrad = opt.allocate(g.length);
            zeroGrad.copyFrom(g);
            opt.addGroup().add("zero", zero, zeroGrad);
            opt.step();
            float[] p = zero.toArray();
            for (int i = 0; i < g.length; i++) {
                // Adam's first step with bias correction: m_hat = g, sqrt(v_hat) = |g|, u = g / (|g| + eps) (+ wd*0)
                float m = (float) (1.0 - 0.9f) * g[i], v = (float) (1.0 - 0.999f) * (g[i] * g[i]);
                float u = (m * (float) (1.0 / (1.0 - 0.9f))) / Math.fma((float) Math.sqrt(v), (float) (1.0 / Math.sqrt(1.0 - 0.999f)), 1e-6f);
                assertEquals(Math.fma(-lr, u, 0f), p[i], 0f, backend + " LAMB zero tensor element " + i);
                assertTrue(Math.abs(p[i] + lr * Math.signum(g[i])) < 1e-5f, backend + ": about -lr*sign(g), got " + p[i]);
            }
        }
    }

    /** Special values (NaN of either sign, infinities, signed zeros, subnormals, the largest floats): every backend as the reference, bit for bit. */
    @ParameterizedTest(name = "{0} on {1}")
    @MethodSource("specialValueCases")
    void specialValuesMatchTheReference(String name, Backend backend) {
        FormulaChecks.assertBackendEqualsReference(backend, configuration(name), FormulaChecks.specialParameters(37, 11), FormulaChecks.specialGradients(37, 3, 12));
    }

    private static OptimizerConfig configuration(String name) {
        return configurations().map(Arguments::get).filter(a -> a[0].equals(name)).map(a -> (OptimizerConfig) a[1])
                .findFirst().orElseThrow();
    }

    static Stream<Arguments> specialValueCases() {
        return Stream.of("lamb", "lamb-l2-no-bias-correction-maximize", "lars", "lars-nesterov-maximize")
                .map(name -> Arguments.of(name, Backend.CPU_FAST));
    }

    @Test
    @Tag("gpu")
    void specialValuesMatchTheReferenceOnCuda() {
        GpuTests.assumeGpu();
        specialValuesMatchTheReference("lamb", Backend.CUDA);
        specialValuesMatchTheReference("lars-nesterov-maximize", Backend.CUDA);
    }

    static Stream<Arguments> badHyperParameters() {
        return Stream.of(
                refused("learningRate", -1e-3, () -> Lamb.builder().optLearningRate(-1e-3).build()),
                refused("beta1", 1.0, () -> Lamb.builder().optBetas(1.0, 0.999).build()),
                refused("beta2", Double.NaN, () -> Lamb.builder().optBetas(0.9, Double.NaN).build()),
                refused("epsilon", 0.0, () -> Lamb.builder().optEpsilon(0.0).build()),
                refused("weightDecay", -0.01, () -> Lamb.builder().optWeightDecay(-0.01).build()),
                refused("learningRate", Double.NaN, () -> Lars.builder().optLearningRate(Double.NaN).build()),
                refused("momentum", -0.9, () -> Lars.builder().optMomentum(-0.9).build()),
                refused("dampening", 1.5, () -> Lars.builder().optDampening(1.5).build()),
                refused("weightDecay", -1e-4, () -> Lars.builder().optWeightDecay(-1e-4).build()),
                refused("trustCoefficient", -0.001, () -> Lars.builder().optTrustCoefficient(-0.001).build()),
                refused("epsilon", -1e-8, () -> Lars.builder().optEpsilon(-1e-8).build()),
                refused("momentum", 0.0, () -> Lars.builder().optNesterov(true).build()));
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("badHyperParameters")
    void badHyperParameterIsRefusedNamingIt(String name, double value, Supplier<OptimizerConfig> build) {
        FormulaChecks.assertRefused(name, value, build);
    }
}
