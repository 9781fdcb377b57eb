package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Lamb;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdk.incubator.vector.FloatVector;

/** {@link Lamb}: kernels/lamb.cu, a layer-wise kernel. The formulas are {@link Lamb}'s Javadoc. */
public final class LambAlgorithm extends Algorithm<Lamb> {
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1, H_EPS = H_FIRST_OWN + 2;
    // struct LambScalars
    public static final int BETA1 = 0, ONE_MINUS_BETA1 = 1, BETA2 = 2, ONE_MINUS_BETA2 = 3, INV_BC1 = 4,
            INV_SQRT_BC2 = 5, EPS = 6, WEIGHT_DECAY = 7, LR = 8, NEG_RATIO = 9, COUNT = 10;
    /** FO_LAMB_BIAS_CORRECTION: the moments are bias-corrected. */
    public static final int BIAS_CORRECTION = ALGORITHM_0;
    /** FO_LAMB_TRUST_RATIO: the tensor's step is scaled by ||p|| / ||u|| (weight decay != 0, or NVLAMB). */
    public static final int TRUST_RATIO = ALGORITHM_0 << 1;

    static final UpdateKernel KERNEL = new Kernel();

    public LambAlgorithm() {
        super(Lamb.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Lamb c) {
        boolean decay = (float) c.weightDecay() != 0f;
        int flags = (c.maximize() ? MAXIMIZE : 0)
                | (decay ? (c.weightDecayMode() == Lamb.WeightDecay.L2 ? L2_DECAY : DECOUPLED_DECAY) : 0)
                | (c.biasCorrection() ? BIAS_CORRECTION : 0)
                | (decay || c.trustRatioWithoutWeightDecay() ? TRUST_RATIO : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.EXP_AVG, StateKind.EXP_AVG_SQ}, flags);
    }

    @Override
    protected void ownHyperParameters(Lamb c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(Lamb c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Lamb> variants() {
        Map<String, Lamb> v = new LinkedHashMap<>();
        v.put("lamb", Lamb.builder().optLearningRate(0.01).build());
        v.put("lamb-l2-nvlamb-maximize", Lamb.builder().optLearningRate(0.01).optWeightDecayMode(Lamb.WeightDecay.L2)
                .optBiasCorrection(false).optTrustRatioWithoutWeightDecay(true).optMaximize(true).optBetas(0.85, 0.99)
                .build());
        return v;
    }

    @Override
    public Map<String, Lamb> benchmarkConfigs() {
        return Map.of("lamb", Lamb.builder().build());
    }

    /** With NVLAMB's trust ratio (the valley's one tensor has no weight decay to switch it on). */
    @Override
    public Map<String, Lamb> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.05;
            case SPIRALS -> 0.01;
        };
        return Map.of("LAMB (lr " + lr + ")", Lamb.builder().optLearningRate(lr).optWeightDecay(0)
                .optTrustRatioWithoutWeightDecay(true).build());
    }

    /** You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes" (arXiv:1904.00962). */
    @Override
    public int publicationYear() {
        return 2019;
    }

    private static final class Kernel extends LayerwiseKernel {
        Kernel() {
            super("LAMB", "lamb", "fusedopt_lamb", 2, COUNT, true);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double beta1 = hyper[h + H_BETA1];
            double beta2 = hyper[h + H_BETA2];
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            if (has(flags, BIAS_CORRECTION)) {
                out[o + INV_BC1] = (float) (1.0 / (1.0 - StepScalars.powerBySquaring(beta1, step)));
                out[o + INV_SQRT_BC2] = (float) (1.0 / Math.sqrt(1.0 - StepScalars.powerBySquaring(beta2, step)));
            } else {
                out[o + INV_BC1] = 1f;
                out[o + INV_SQRT_BC2] = 1f;
            }
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
            out[o + LR] = lrF;
            out[o + NEG_RATIO] = -lrF;
        }

        /** LambScalars::layer: lr * ||p|| / ||u|| where both norms are non-zero, else lr. */
        @Override
        public void tensorScalars(double sumP, double sumU, float[] s, int flags) {
            double ratio = s[LR];
            if (has(flags, TRUST_RATIO)) {
                double paramNorm = Math.sqrt(sumP), updateNorm = Math.sqrt(sumU);
                if (paramNorm != 0.0 && updateNorm != 0.0) ratio = ratio * (paramNorm / updateNorm);
            }
            s[NEG_RATIO] = (float) -ratio;
        }

        /** lamb_update from the new moments m and v: u = (m*invBc1) / (sqrt(v)*invSqrtBc2 + eps), decoupled u + wd*p. */
        private static float update(float p, float m, float v, float[] s, int flags) {
            float u = (m * s[INV_BC1]) / Math.fma((float) Math.sqrt(v), s[INV_SQRT_BC2], s[EPS]);
            return has(flags, DECOUPLED_DECAY) ? Math.fma(s[WEIGHT_DECAY], p, u) : u;
        }

        /** a = p, b = u (LambNormOp). Slots: exp_avg, exp_avg_sq, read only. */
        @Override
        public void normInputs(FloatBuffer[] o, int first, int from, int to, float[] s, int flags, float[] a, float[] b) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2], expAvgSq = o[first + 3];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m = Math.fma(s[BETA1], expAvg.get(i), s[ONE_MINUS_BETA1] * g);
                float v = Math.fma(s[BETA2], expAvgSq.get(i), s[ONE_MINUS_BETA2] * (g * g));
                a[i - from] = p;
                b[i - from] = update(p, m, v, s, flags);
            }
        }

        /** Slots: exp_avg, exp_avg_sq. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2], expAvgSq = o[first + 3];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m = Math.fma(s[BETA1], expAvg.get(i), s[ONE_MINUS_BETA1] * g);
                float v = Math.fma(s[BETA2], expAvgSq.get(i), s[ONE_MINUS_BETA2] * (g * g));
                expAvg.put(i, m);
                expAvgSq.put(i, v);
                param.put(i, Math.fma(s[NEG_RATIO], update(p, m, v, s, flags), p));
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
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY), decoupled = has(flags, DECOUPLED_DECAY);
            FloatVector beta1 = broadcast(s[BETA1]), oneMinusBeta1 = broadcast(s[ONE_MINUS_BETA1]);
            FloatVector beta2 = broadcast(s[BETA2]), oneMinusBeta2 = broadcast(s[ONE_MINUS_BETA2]);
            FloatVector invBc1 = broadcast(s[INV_BC1]), invSqrtBc2 = broadcast(s[INV_SQRT_BC2]);
            FloatVector eps = broadcast(s[EPS]), wd = broadcast(s[WEIGHT_DECAY]), negRatio = broadcast(s[NEG_RATIO]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector m = load(expAvg, i).fma(beta1, g.mul(oneMinusBeta1));
                FloatVector v = load(expAvgSq, i).fma(beta2, g.mul(g).mul(oneMinusBeta2));
                store(m, expAvg, i);
                store(v, expAvgSq, i);
                FloatVector u = m.mul(invBc1).div(v.sqrt().fma(invSqrtBc2, eps));
                if (decoupled) u = p.fma(wd, u);
                store(u.fma(negRatio, p), param, i);
            }
        }
    }
}
