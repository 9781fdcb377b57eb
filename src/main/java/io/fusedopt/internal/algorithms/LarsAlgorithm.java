package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Lars;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdk.incubator.vector.FloatVector;

/** {@link Lars}: kernels/lars.cu, a layer-wise kernel. The formulas are {@link Lars}'s Javadoc. */
public final class LarsAlgorithm extends Algorithm<Lars> {
    static final int H_MOMENTUM = H_FIRST_OWN, H_DAMPENING = H_FIRST_OWN + 1, H_TRUST_COEFFICIENT = H_FIRST_OWN + 2,
            H_EPS = H_FIRST_OWN + 3;
    // struct LarsScalars
    public static final int NEG_LR = 0, MOMENTUM_FACTOR = 1, ONE_MINUS_DAMPENING = 2, WEIGHT_DECAY = 3,
            TRUST_COEFFICIENT = 4, EPS = 5, RATIO = 6, COUNT = 7;
    /** FO_LARS_TRUST_RATIO: the group takes the trust ratio. */
    public static final int TRUST_RATIO = ALGORITHM_0;

    static final UpdateKernel KERNEL = new Kernel();

    public LarsAlgorithm() {
        super(Lars.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Lars c) {
        boolean momentum = (float) c.momentum() != 0f;
        int flags = UpdatePlan.commonFlags(c.maximize(), c.weightDecay())
                | (momentum ? MOMENTUM : 0) | (c.nesterov() ? NESTEROV : 0)
                | (c.skipTrustRatio() ? 0 : TRUST_RATIO);
        return new UpdatePlan(KERNEL, new StateKind[] {momentum ? StateKind.MOMENTUM_BUFFER : null}, flags);
    }

    @Override
    protected void ownHyperParameters(Lars c, float[] h) {
        h[H_MOMENTUM] = (float) c.momentum();
        h[H_DAMPENING] = (float) c.dampening();
        h[H_TRUST_COEFFICIENT] = (float) c.trustCoefficient();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(Lars c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Lars> variants() {
        Map<String, Lars> v = new LinkedHashMap<>();
        Lars.Builder lars = Lars.builder().optLearningRate(0.1).optMomentum(0.9).optWeightDecay(1e-3).optTrustCoefficient(0.02);
        v.put("lars", lars.build());
        v.put("lars-nesterov-maximize", lars.optNesterov(true).optMaximize(true).build());
        v.put("lars-dampening-no-decay", Lars.builder().optLearningRate(0.1).optMomentum(0.8).optDampening(0.1)
                .optTrustCoefficient(0.02).build());
        v.put("lars-skip-no-momentum", Lars.builder().optLearningRate(0.1).optSkipTrustRatio(true).build());
        return v;
    }

    /** Momentum 0.9, the usual choice (Lightning's default is none). */
    @Override
    public Map<String, Lars> benchmarkConfigs() {
        return Map.of("lars", Lars.builder().optMomentum(0.9).build());
    }

    @Override
    public Map<String, Lars> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 1.0;
            case SPIRALS -> 1.0;
        };
        return Map.of("LARS (lr " + lr + ", 0.9)", Lars.builder().optLearningRate(lr).optMomentum(0.9)
                .optTrustCoefficient(0.01).build());
    }

    /** You, Gitman and Ginsburg, "Large Batch Training of Convolutional Networks" (arXiv:1708.03888). */
    @Override
    public int publicationYear() {
        return 2017;
    }

    private static final class Kernel extends LayerwiseKernel {
        Kernel() {
            super("LARS", "lars", "fusedopt_lars", 1, COUNT, false);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            out[o + NEG_LR] = -lrF;
            out[o + MOMENTUM_FACTOR] = hyper[h + H_MOMENTUM];
            out[o + ONE_MINUS_DAMPENING] = (float) (1.0 - hyper[h + H_DAMPENING]);
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
            out[o + TRUST_COEFFICIENT] = hyper[h + H_TRUST_COEFFICIENT];
            out[o + EPS] = hyper[h + H_EPS];
            out[o + RATIO] = 1f;
        }

        /** LarsScalars::layer: trustCoefficient * ||p|| / (||g|| + weightDecay * ||p|| + eps) where both norms are non-zero, else 1. */
        @Override
        public void tensorScalars(double sumP, double sumG, float[] s, int flags) {
            s[RATIO] = 1f;
            if (!has(flags, TRUST_RATIO)) return;
            double paramNorm = Math.sqrt(sumP), gradNorm = Math.sqrt(sumG);
            if (paramNorm == 0.0 || gradNorm == 0.0) return;
            double denominator = (gradNorm + (double) s[WEIGHT_DECAY] * paramNorm) + (double) s[EPS];
            s[RATIO] = (float) (((double) s[TRUST_COEFFICIENT] * paramNorm) / denominator);
        }

        /** a = p, b = the gradient negated for maximize (LarsNormOp). */
        @Override
        public void normInputs(FloatBuffer[] o, int first, int from, int to, float[] s, int flags, float[] a, float[] b) {
            FloatBuffer param = o[first], grad = o[first + 1];
            boolean maximize = has(flags, MAXIMIZE);
            for (int i = from; i < to; i++) {
                a[i - from] = param.get(i);
                float g = grad.get(i);
                b[i - from] = maximize ? -g : g;
            }
        }

        /** Slot: momentum_buffer (null without momentum). */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], buffer = o[first + 2];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float d = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                if (has(flags, TRUST_RATIO)) d = d * s[RATIO];
                if (has(flags, MOMENTUM)) {
                    float b = has(flags, FIRST_STEP) ? d : Math.fma(s[MOMENTUM_FACTOR], buffer.get(i), s[ONE_MINUS_DAMPENING] * d);
                    buffer.put(i, b);
                    d = has(flags, NESTEROV) ? Math.fma(s[MOMENTUM_FACTOR], b, d) : b;
                }
                param.put(i, Math.fma(s[NEG_LR], d, p));
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
            VectorOperand param = o[0], grad = o[1], buffer = o[2];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY), trust = has(flags, TRUST_RATIO);
            boolean momentum = has(flags, MOMENTUM), first = has(flags, FIRST_STEP), nesterov = has(flags, NESTEROV);
            FloatVector negLr = broadcast(s[NEG_LR]), mu = broadcast(s[MOMENTUM_FACTOR]);
            FloatVector oneMinusDampening = broadcast(s[ONE_MINUS_DAMPENING]), wd = broadcast(s[WEIGHT_DECAY]);
            FloatVector ratio = broadcast(s[RATIO]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector d = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                if (trust) d = d.mul(ratio);
                if (momentum) {
                    FloatVector b = first ? d : load(buffer, i).fma(mu, d.mul(oneMinusDampening));
                    store(b, buffer, i);
                    d = nesterov ? b.fma(mu, d) : b;
                }
                store(d.fma(negLr, p), param, i);
            }
        }
    }
}
