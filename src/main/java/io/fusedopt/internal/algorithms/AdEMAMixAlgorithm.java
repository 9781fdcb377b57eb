package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.AdEMAMix;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdk.incubator.vector.FloatVector;

/** {@link AdEMAMix}: kernels/ademamix.cu. The formulas are {@link AdEMAMix}'s Javadoc. */
public final class AdEMAMixAlgorithm extends Algorithm<AdEMAMix> {
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1, H_BETA3 = H_FIRST_OWN + 2,
            H_ALPHA = H_FIRST_OWN + 3, H_EPS = H_FIRST_OWN + 4, H_ALPHA_WARMUP = H_FIRST_OWN + 5,
            H_BETA3_WARMUP = H_FIRST_OWN + 6;
    // struct AdEMAMixScalars
    public static final int NEG_LR = 0, INV_BC1 = 1, INV_SQRT_BC2 = 2, BETA1 = 3, ONE_MINUS_BETA1 = 4, BETA2 = 5,
            ONE_MINUS_BETA2 = 6, BETA3_T = 7, ONE_MINUS_BETA3_T = 8, ALPHA_T = 9, EPS = 10, WEIGHT_DECAY = 11,
            COUNT = 12;

    static final UpdateKernel KERNEL = new Kernel();

    public AdEMAMixAlgorithm() {
        super(AdEMAMix.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    /** The weight decay is always decoupled: the L2 flag is never set. The warm-ups are per-step scalars only. */
    /** bitsandbytes has an 8-bit form of it. */
    @Override
    public boolean hasQuantizedStates() {
        return true;
    }

    @Override
    public UpdatePlan plan(AdEMAMix c) {
        int flags = (c.maximize() ? MAXIMIZE : 0) | ((float) c.weightDecay() != 0f ? DECOUPLED_DECAY : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.M1, StateKind.M2, StateKind.NU}, flags);
    }

    @Override
    protected void ownHyperParameters(AdEMAMix c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
        h[H_BETA3] = (float) c.beta3();
        h[H_ALPHA] = (float) c.alpha();
        h[H_EPS] = (float) c.epsilon();
        h[H_ALPHA_WARMUP] = (float) c.alphaWarmup();
        h[H_BETA3_WARMUP] = (float) c.beta3Warmup();
    }

    @Override
    protected double weightDecay(AdEMAMix c) {
        return c.weightDecay();
    }

    /**
     * The warm-ups end inside the equivalence suites' 12 steps, so that both sides of each min()
     * run; one variant without weight decay, where the update skips the decay's FMA.
     */
    @Override
    public Map<String, AdEMAMix> variants() {
        Map<String, AdEMAMix> v = new LinkedHashMap<>();
        v.put("ademamix", AdEMAMix.builder().optLearningRate(1e-2).build());
        v.put("ademamix-warmups-maximize", AdEMAMix.builder().optLearningRate(1e-2).optBetas(0.8, 0.99, 0.999)
                .optAlpha(8).optAlphaWarmup(5).optBeta3Warmup(8).optEpsilon(1e-6).optMaximize(true).build());
        v.put("ademamix-no-decay", AdEMAMix.builder().optLearningRate(1e-2).optWeightDecay(0).build());
        return v;
    }

    @Override
    public Map<String, AdEMAMix> benchmarkConfigs() {
        return Map.of("ademamix", AdEMAMix.builder().build());
    }

    @Override
    public Map<String, AdEMAMix> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.3;
            case SPIRALS -> 0.01;
        };
        return Map.of("AdEMAMix (lr " + lr + ")", AdEMAMix.builder().optLearningRate(lr).build());
    }

    /** Pagliardini, Ablin and Grangier, "The AdEMAMix Optimizer: Better, Faster, Older" (arXiv:2409.03137). */
    @Override
    public int publicationYear() {
        return 2024;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("ADEMAMIX", "ademamix", "fusedopt_ademamix", 3, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double beta1 = hyper[h + H_BETA1];
            double beta2 = hyper[h + H_BETA2];
            double beta3 = hyper[h + H_BETA3];
            double alpha = hyper[h + H_ALPHA];
            double alphaWarmup = hyper[h + H_ALPHA_WARMUP];
            double beta3Warmup = hyper[h + H_BETA3_WARMUP];
            double t = (double) step;
            double bc1 = 1.0 - StepScalars.powerBySquaring(beta1, step);
            double bc2 = 1.0 - StepScalars.powerBySquaring(beta2, step);
            double alphaT = alpha;
            if (alphaWarmup != 0.0) {
                double ramp = t * alpha / alphaWarmup;
                if (ramp < alpha) alphaT = ramp;
            }
            double beta3T = beta3;
            if (beta3Warmup != 0.0) {
                // The config guarantees 0 < beta1 <= beta3 < 1: the denominator is <= log(beta3) < 0.
                double lnBeta1 = StepScalars.log(beta1), lnBeta3 = StepScalars.log(beta3);
                double scale = t / beta3Warmup;
                double scheduled = StepScalars.exp(lnBeta1 * lnBeta3 / ((1.0 - scale) * lnBeta3 + scale * lnBeta1));
                if (scheduled < beta3) beta3T = scheduled;
            }
            out[o + NEG_LR] = -lrF;
            out[o + INV_BC1] = (float) (1.0 / bc1);
            out[o + INV_SQRT_BC2] = (float) (1.0 / Math.sqrt(bc2));
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            out[o + BETA3_T] = (float) beta3T;
            out[o + ONE_MINUS_BETA3_T] = (float) (1.0 - beta3T);
            out[o + ALPHA_T] = (float) alphaT;
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
        }

        /** Slots: m1, m2, nu. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], fast = o[first + 2], slow = o[first + 3],
                    second = o[first + 4];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m1 = Math.fma(s[BETA1], fast.get(i), s[ONE_MINUS_BETA1] * g);
                float m2 = Math.fma(s[BETA3_T], slow.get(i), s[ONE_MINUS_BETA3_T] * g);
                float nu = Math.fma(s[BETA2], second.get(i), s[ONE_MINUS_BETA2] * (g * g));
                fast.put(i, m1);
                slow.put(i, m2);
                second.put(i, nu);
                float denom = Math.fma((float) Math.sqrt(nu), s[INV_SQRT_BC2], s[EPS]);
                float u = Math.fma(s[ALPHA_T], m2, m1 * s[INV_BC1]) / denom;
                if (has(flags, DECOUPLED_DECAY)) u = Math.fma(s[WEIGHT_DECAY], p, u);
                param.put(i, Math.fma(s[NEG_LR], u, p));
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
            VectorOperand param = o[0], grad = o[1], fast = o[2], slow = o[3], second = o[4];
            boolean maximize = has(flags, MAXIMIZE), decoupled = has(flags, DECOUPLED_DECAY);
            FloatVector negLr = broadcast(s[NEG_LR]), invBc1 = broadcast(s[INV_BC1]);
            FloatVector invSqrtBc2 = broadcast(s[INV_SQRT_BC2]), eps = broadcast(s[EPS]);
            FloatVector beta1 = broadcast(s[BETA1]), oneMinusBeta1 = broadcast(s[ONE_MINUS_BETA1]);
            FloatVector beta2 = broadcast(s[BETA2]), oneMinusBeta2 = broadcast(s[ONE_MINUS_BETA2]);
            FloatVector beta3 = broadcast(s[BETA3_T]), oneMinusBeta3 = broadcast(s[ONE_MINUS_BETA3_T]);
            FloatVector alpha = broadcast(s[ALPHA_T]), wd = broadcast(s[WEIGHT_DECAY]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, false);
                FloatVector m1 = load(fast, i).fma(beta1, g.mul(oneMinusBeta1));
                FloatVector m2 = load(slow, i).fma(beta3, g.mul(oneMinusBeta3));
                FloatVector nu = load(second, i).fma(beta2, g.mul(g).mul(oneMinusBeta2));
                store(m1, fast, i);
                store(m2, slow, i);
                store(nu, second, i);
                FloatVector denom = nu.sqrt().fma(invSqrtBc2, eps);
                FloatVector u = m2.fma(alpha, m1.mul(invBc1)).div(denom);
                if (decoupled) u = p.fma(wd, u);
                store(u.fma(negLr, p), param, i);
            }
        }
    }
}
