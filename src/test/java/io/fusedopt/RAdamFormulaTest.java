package io.fusedopt;

import static io.fusedopt.FormulaChecks.refused;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.algorithms.RAdamAlgorithm;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * RAdam's CPU reference against the formula of PyTorch's {@code torch/optim/radam.py}
 * ({@code _single_tensor_radam}, with {@code decoupled_weight_decay} and {@code maximize} of
 * PyTorch 2.x), computed here in float64 from the float32 hyper-parameters, step by step, with
 * {@link Math#pow} for the powers (the library uses binary exponentiation).
 *
 * <p>Bound, per element after each of 8 steps: |p - p64| &lt;= 2^-20 * max(1, |p64|), the m and v
 * errors at most 2^-20 times the largest |g'| and g'^2 seen. Why: each float32 operation rounds
 * with a relative error of at most 2^-24; a step rounds p - u once (half an ulp of p) and u, about
 * ten operations on values each a few roundings off, carries a relative error of a few 2^-22 on a
 * value far smaller than p (lr = 1e-2 here); m and v gain a few 2^-24 of their terms per step.
 * Over 8 steps that stays below 8 * 2^-24 * (|p| + |u|), under the bound.
 */
class RAdamFormulaTest {
    private static final int STEPS = 8;
    private static final int SIZE = 23;
    private static final double BOUND = 0x1p-20;

    static Stream<Arguments> configurations() {
        RAdam.Builder b = RAdam.builder().optLearningRate(1e-2);
        return Stream.of(
                Arguments.of("defaults", b.build()),
                Arguments.of("l2-maximize", RAdam.builder().optLearningRate(1e-2).optWeightDecay(0.1).optMaximize(true).build()),
                Arguments.of("decoupled", RAdam.builder().optLearningRate(1e-2).optWeightDecay(0.1)
                        .optDecoupledWeightDecay(true).optBetas(0.8, 0.99).optEpsilon(1e-6).build()),
                // rho_inf = 2/(1 - 0.5) - 1 = 3 <= 5: never rectified.
                Arguments.of("never-rectified", RAdam.builder().optLearningRate(1e-2).optBetas(0.9, 0.5).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configurations")
    void referenceFollowsTheFormulaInFloat64(String name, RAdam config) {
        Random random = new Random(name.hashCode());
        float[] initial = Scenario.gaussian(random, SIZE, 1f);
        Formula64 expected = new Formula64(config, initial);
        List<Boolean> rectifiedSteps = new ArrayList<>();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer p = opt.allocate(SIZE);
            TensorBuffer g = opt.allocate(SIZE);
            p.copyFrom(initial);
            Parameter parameter = opt.addGroup().add("p", p, g);
            for (int t = 1; t <= STEPS; t++) {
                float[] grad = Scenario.gaussian(random, SIZE, t % 3 == 0 ? 1e-3f : 1f);
                grad[0] = 0f; // a zero gradient: m = v = 0 on the rectified steps gives u = 0
                g.copyFrom(grad);
                opt.step();
                boolean rectified = expected.step(grad, t);
                rectifiedSteps.add(rectified);
                float[] scalars = new float[RAdamAlgorithm.COUNT];
                StepScalars.compute(config, t, scalars);
                assertEquals(rectified ? 1f : 0f, scalars[RAdamAlgorithm.RECTIFIED], name + ": the branch of step " + t);
                String where = name + " step " + t;
                FormulaChecks.assertNear(expected.p, p.toArray(), i -> BOUND * Math.max(1, Math.abs(expected.p[i])), where + " param");
                FormulaChecks.assertNear(expected.m, parameter.state(StateKind.EXP_AVG).toArray(), i -> BOUND * expected.maxAbsGrad,
                        where + " exp_avg");
                FormulaChecks.assertNear(expected.v, parameter.state(StateKind.EXP_AVG_SQ).toArray(),
                        i -> BOUND * expected.maxAbsGrad * expected.maxAbsGrad, where + " exp_avg_sq");
            }
        }
        // rho_t <= t: with beta2 >= 0.99 the first 5 steps are plain momentum and steps 6 to 8 rectified.
        List<Boolean> branches = config.beta2() == 0.5
                ? List.of(false, false, false, false, false, false, false, false)
                : List.of(false, false, false, false, false, true, true, true);
        assertEquals(branches, rectifiedSteps, name + ": rectified steps");
    }

    /** torch/optim/radam.py's single-tensor update in float64, one element at a time. */
    private static final class Formula64 {
        final double lr, beta1, beta2, eps, weightDecay;
        final boolean decoupled, maximize;
        final double[] p, m, v;
        double maxAbsGrad;

        Formula64(RAdam c, float[] initial) {
            lr = (float) c.learningRate();
            beta1 = (float) c.beta1();
            beta2 = (float) c.beta2();
            eps = (float) c.epsilon();
            weightDecay = (float) c.weightDecay();
            decoupled = c.decoupledWeightDecay();
            maximize = c.maximize();
            p = new double[initial.length];
            for (int i = 0; i < p.length; i++) p[i] = initial[i];
            m = new double[p.length];
            v = new double[p.length];
        }

        /** One step; returns whether it was rectified. */
        boolean step(float[] grad, int t) {
            double bc1 = 1 - Math.pow(beta1, t);
            double bc2 = 1 - Math.pow(beta2, t);
            double rhoInf = 2 / (1 - beta2) - 1;
            double rhoT = rhoInf - 2 * t * Math.pow(beta2, t) / bc2;
            boolean rectified = rhoT > 5;
            for (int i = 0; i < p.length; i++) {
                double g = maximize ? -grad[i] : grad[i];
                if (weightDecay != 0) {
                    if (decoupled) p[i] *= 1 - lr * weightDecay;
                    else g += weightDecay * p[i];
                }
                maxAbsGrad = Math.max(maxAbsGrad, Math.abs(g));
                m[i] = beta1 * m[i] + (1 - beta1) * g;
                v[i] = beta2 * v[i] + (1 - beta2) * g * g;
                double mHat = m[i] / bc1;
                if (rectified) {
                    double rect = Math.sqrt((rhoT - 4) * (rhoT - 2) * rhoInf / ((rhoInf - 4) * (rhoInf - 2) * rhoT));
                    double adaptiveLr = Math.sqrt(bc2) / (Math.sqrt(v[i]) + eps);
                    p[i] -= mHat * lr * adaptiveLr * rect;
                } else {
                    p[i] -= mHat * lr;
                }
            }
            return rectified;
        }
    }

    static Stream<Arguments> badHyperParameters() {
        return Stream.of(
                refused("learningRate", -1e-3, () -> RAdam.builder().optLearningRate(-1e-3).build()),
                refused("learningRate", Double.NaN, () -> RAdam.builder().optLearningRate(Double.NaN).build()),
                refused("beta1", 1.0, () -> RAdam.builder().optBetas(1.0, 0.999).build()),
                refused("beta1", -0.1, () -> RAdam.builder().optBetas(-0.1, 0.999).build()),
                refused("beta2", 1.0, () -> RAdam.builder().optBetas(0.9, 1.0).build()),
                // rounds to 1 in float32, where rho_inf would be infinite
                refused("beta2", 0.99999999, () -> RAdam.builder().optBetas(0.9, 0.99999999).build()),
                refused("epsilon", 0.0, () -> RAdam.builder().optEpsilon(0).build()),
                refused("epsilon", -1e-8, () -> RAdam.builder().optEpsilon(-1e-8).build()),
                refused("weightDecay", -0.01, () -> RAdam.builder().optWeightDecay(-0.01).build()),
                refused("weightDecay", Double.POSITIVE_INFINITY,
                        () -> RAdam.builder().optWeightDecay(Double.POSITIVE_INFINITY).optDecoupledWeightDecay(true).build()));
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("badHyperParameters")
    void badHyperParameterIsRefusedNamingIt(String name, double value, Supplier<RAdam> build) {
        FormulaChecks.assertRefused(name, value, build);
    }

}
