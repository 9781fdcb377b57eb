package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.RAdam;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.TorchOptimizer;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import jdk.incubator.vector.FloatVector;

/** {@link RAdam}: kernels/radam.cu. The formulas are {@link RAdam}'s Javadoc. */
public final class RAdamAlgorithm extends Algorithm<RAdam> {
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1, H_EPS = H_FIRST_OWN + 2;
    // struct RAdamScalars. RECTIFIED is 1 on a step with rho_t > 5, else 0: the branch is a per-step
    // value, since the flags do not change from step to step.
    public static final int BC1 = 0, LR = 1, SQRT_BC2 = 2, RECT = 3, RECTIFIED = 4, BETA1 = 5, ONE_MINUS_BETA1 = 6,
            BETA2 = 7, ONE_MINUS_BETA2 = 8, EPS = 9, WEIGHT_DECAY = 10, DECAY_FACTOR = 11, COUNT = 12;

    static final UpdateKernel KERNEL = new Kernel();

    public RAdamAlgorithm() {
        super(RAdam.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(RAdam c) {
        boolean decay = (float) c.weightDecay() != 0f;
        int flags = (c.maximize() ? MAXIMIZE : 0)
                | (decay && !c.decoupledWeightDecay() ? L2_DECAY : 0)
                | (decay && c.decoupledWeightDecay() ? DECOUPLED_DECAY : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.EXP_AVG, StateKind.EXP_AVG_SQ}, flags);
    }

    @Override
    protected void ownHyperParameters(RAdam c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(RAdam c) {
        return c.weightDecay();
    }

    /**
     * With the default betas the first five steps are not rectified and the later ones are, so
     * every variant runs both branches within the equivalence suites' 12 steps.
     */
    @Override
    public Map<String, RAdam> variants() {
        Map<String, RAdam> v = new LinkedHashMap<>();
        v.put("radam", RAdam.builder().optLearningRate(1e-2).build());
        v.put("radam-l2-maximize", RAdam.builder().optLearningRate(1e-2).optWeightDecay(0.05).optMaximize(true).build());
        v.put("radamw", RAdam.builder().optLearningRate(1e-2).optWeightDecay(1e-2).optDecoupledWeightDecay(true)
                .optBetas(0.8, 0.99).optEpsilon(1e-6).build());
        return v;
    }

    @Override
    public Map<String, RAdam> benchmarkConfigs() {
        return Map.of("radam", RAdam.builder().build());
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(RAdam c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("betas", java.util.List.of(c.beta1(), c.beta2()));
        a.put("eps", c.epsilon());
        a.put("weight_decay", c.weightDecay());
        // Newer than torch 1.13: named only when on, so the defaults run on any torch.
        if (c.decoupledWeightDecay()) a.put("decoupled_weight_decay", true);
        if (c.maximize()) a.put("maximize", true);
        return Optional.of(new TorchOptimizer("RAdam", a));
    }

    @Override
    public Map<String, RAdam> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.3;
            case SPIRALS -> 0.01;
        };
        return Map.of("RAdam (lr " + lr + ")", RAdam.builder().optLearningRate(lr).build());
    }

    /** Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond". */
    @Override
    public int publicationYear() {
        return 2019;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("RADAM", "radam", "fusedopt_radam", 2, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double lr = lrF;
            double beta1 = hyper[h + H_BETA1];
            double beta2 = hyper[h + H_BETA2];
            float wd = hyper[h + H_WEIGHT_DECAY];
            double beta2PowT = StepScalars.powerBySquaring(beta2, step);
            double bc1 = 1.0 - StepScalars.powerBySquaring(beta1, step);
            double bc2 = 1.0 - beta2PowT;
            // The length of the approximated simple moving average, its limit and the rectification.
            double rhoInf = 2.0 / (1.0 - beta2) - 1.0;
            double rhoT = rhoInf - 2.0 * (double) step * beta2PowT / bc2;
            boolean rectified = rhoT > 5.0;
            out[o + BC1] = (float) bc1;
            out[o + LR] = lrF;
            out[o + SQRT_BC2] = (float) Math.sqrt(bc2);
            out[o + RECT] = rectified
                    ? (float) Math.sqrt((rhoT - 4.0) * (rhoT - 2.0) * rhoInf / ((rhoInf - 4.0) * (rhoInf - 2.0) * rhoT))
                    : 1f;
            out[o + RECTIFIED] = rectified ? 1f : 0f;
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = wd;
            out[o + DECAY_FACTOR] = (float) (1.0 - lr * wd);
        }

        /** Slots: exp_avg, exp_avg_sq. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2], expAvgSq = o[first + 3];
            boolean rectified = s[RECTIFIED] != 0f;
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                if (has(flags, DECOUPLED_DECAY)) p = p * s[DECAY_FACTOR];
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m = Math.fma(s[BETA1], expAvg.get(i), s[ONE_MINUS_BETA1] * g);
                float v = Math.fma(s[BETA2], expAvgSq.get(i), s[ONE_MINUS_BETA2] * (g * g));
                expAvg.put(i, m);
                expAvgSq.put(i, v);
                float u = m / s[BC1] * s[LR];
                if (rectified) u = u * (1f / ((float) Math.sqrt(v) + s[EPS]) * s[SQRT_BC2]) * s[RECT];
                param.put(i, p - u);
            }
        }

        @Override
        protected VectorUpdate newVectorUpdate() {
            return new Vectorized();
        }
    }

    /** {@link Kernel#reference} per lane. */
    private static final class Vectorized implements VectorUpdate {
        @Override
        public void run(VectorOperand[] o, int from, int to, float[] s, int flags) {
            VectorOperand param = o[0], grad = o[1], expAvg = o[2], expAvgSq = o[3];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            boolean decoupled = has(flags, DECOUPLED_DECAY), rectified = s[RECTIFIED] != 0f;
            FloatVector bc1 = broadcast(s[BC1]), lr = broadcast(s[LR]), sqrtBc2 = broadcast(s[SQRT_BC2]);
            FloatVector rect = broadcast(s[RECT]), one = broadcast(1f);
            FloatVector beta1 = broadcast(s[BETA1]), oneMinusBeta1 = broadcast(s[ONE_MINUS_BETA1]);
            FloatVector beta2 = broadcast(s[BETA2]), oneMinusBeta2 = broadcast(s[ONE_MINUS_BETA2]);
            FloatVector eps = broadcast(s[EPS]), wd = broadcast(s[WEIGHT_DECAY]);
            FloatVector decayFactor = broadcast(s[DECAY_FACTOR]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                if (decoupled) p = p.mul(decayFactor);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector m = load(expAvg, i).fma(beta1, g.mul(oneMinusBeta1));
                FloatVector v = load(expAvgSq, i).fma(beta2, g.mul(g).mul(oneMinusBeta2));
                store(m, expAvg, i);
                store(v, expAvgSq, i);
                FloatVector u = m.div(bc1).mul(lr);
                if (rectified) u = u.mul(one.div(v.sqrt().add(eps)).mul(sqrtBc2)).mul(rect);
                store(p.sub(u), param, i);
            }
        }
    }
}
