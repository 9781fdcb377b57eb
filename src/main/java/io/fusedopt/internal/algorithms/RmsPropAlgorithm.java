package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.RmsProp;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.TorchOptimizer;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import jdk.incubator.vector.FloatVector;

/** {@link RmsProp}, plain, centered and with momentum: kernels/rmsprop.cu. The formulas are {@link RmsProp}'s Javadoc. */
public final class RmsPropAlgorithm extends Algorithm<RmsProp> {
    static final int H_ALPHA = H_FIRST_OWN, H_EPS = H_FIRST_OWN + 1, H_MOMENTUM = H_FIRST_OWN + 2;
    // struct RmsPropScalars
    public static final int NEG_LR = 0, WEIGHT_DECAY = 1, ALPHA = 2, ONE_MINUS_ALPHA = 3, EPS = 4, MOMENTUM = 5,
            COUNT = 6;

    static final UpdateKernel KERNEL = new Kernel();

    public RmsPropAlgorithm() {
        super(RmsProp.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    /** bitsandbytes has an 8-bit form of it. */
    @Override
    public boolean hasQuantizedStates() {
        return true;
    }

    @Override
    public UpdatePlan plan(RmsProp c) {
        int flags = UpdatePlan.commonFlags(c.maximize(), c.weightDecay())
                | (c.centered() ? CENTERED : 0)
                | (c.usesMomentum() ? io.fusedopt.internal.KernelFlags.MOMENTUM : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {
            StateKind.SQUARE_AVG,
            c.centered() ? StateKind.GRAD_AVG : null,
            c.usesMomentum() ? StateKind.MOMENTUM_BUFFER : null}, flags);
    }

    @Override
    protected void ownHyperParameters(RmsProp c, float[] h) {
        h[H_ALPHA] = (float) c.alpha();
        h[H_EPS] = (float) c.epsilon();
        h[H_MOMENTUM] = (float) c.momentum();
    }

    @Override
    protected double weightDecay(RmsProp c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, RmsProp> variants() {
        Map<String, RmsProp> v = new LinkedHashMap<>();
        RmsProp.Builder r = RmsProp.builder().optLearningRate(0.01);
        v.put("rmsprop", r.build());
        v.put("rmsprop-centered", r.optCentered(true).build());
        v.put("rmsprop-momentum", RmsProp.builder().optLearningRate(0.01).optMomentum(0.9).build());
        v.put("rmsprop-centered-momentum-l2", RmsProp.builder().optLearningRate(0.01).optCentered(true).optMomentum(0.5)
                .optWeightDecay(0.01).build());
        v.put("rmsprop-maximize", RmsProp.builder().optLearningRate(0.01).optAlpha(0.9).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, RmsProp> benchmarkConfigs() {
        return Map.of("rmsprop", RmsProp.builder().build());
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(RmsProp c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("alpha", c.alpha());
        a.put("eps", c.epsilon());
        a.put("weight_decay", c.weightDecay());
        a.put("momentum", c.momentum());
        a.put("centered", c.centered());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("RMSprop", a));
    }

    @Override
    public Map<String, RmsProp> demoConfigs(DemoProblem problem) {
        return switch (problem) {
            case NARROW_VALLEY -> Map.of("RMSProp (lr 0.3, alpha 0.9)", RmsProp.builder().optLearningRate(0.3).optAlpha(0.9).build());
            case SPIRALS -> Map.of("RMSProp (lr 0.005)", RmsProp.builder().optLearningRate(0.005).build());
        };
    }

    /** Tieleman and Hinton, Coursera "Neural Networks for Machine Learning", lecture 6.5. */
    @Override
    public int publicationYear() {
        return 2012;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("RMSPROP", "rmsprop", "fusedopt_rmsprop", 3, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lr, int flags, long step, float[] out, int o) {
            out[o + NEG_LR] = -lr;
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
            out[o + ALPHA] = hyper[h + H_ALPHA];
            out[o + ONE_MINUS_ALPHA] = (float) (1.0 - hyper[h + H_ALPHA]);
            out[o + EPS] = hyper[h + H_EPS];
            out[o + MOMENTUM] = hyper[h + H_MOMENTUM];
        }

        /** Slots: square_avg, grad_avg (null unless centered), momentum_buffer (null without momentum). */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], squareAvg = o[first + 2], gradAvg = o[first + 3],
                    momentumBuffer = o[first + 4];
            float alpha = s[ALPHA];
            float oneMinusAlpha = s[ONE_MINUS_ALPHA];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float sq = Math.fma(alpha, squareAvg.get(i), oneMinusAlpha * (g * g));
                squareAvg.put(i, sq);
                float avg = sq;
                if (has(flags, CENTERED)) {
                    float a = Math.fma(alpha, gradAvg.get(i), oneMinusAlpha * g);
                    gradAvg.put(i, a);
                    avg = Math.fma(-a, a, sq);
                }
                float step = g / ((float) Math.sqrt(avg) + s[EPS]);
                if (has(flags, io.fusedopt.internal.KernelFlags.MOMENTUM)) {
                    step = Math.fma(s[MOMENTUM], momentumBuffer.get(i), step);
                    momentumBuffer.put(i, step);
                }
                param.put(i, Math.fma(s[NEG_LR], step, p));
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
            VectorOperand param = o[0], grad = o[1], squareAvg = o[2], gradAvg = o[3], momentumBuffer = o[4];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            boolean centered = has(flags, CENTERED), momentum = has(flags, io.fusedopt.internal.KernelFlags.MOMENTUM);
            FloatVector negLr = broadcast(s[NEG_LR]), wd = broadcast(s[WEIGHT_DECAY]);
            FloatVector alpha = broadcast(s[ALPHA]), oneMinusAlpha = broadcast(s[ONE_MINUS_ALPHA]);
            FloatVector eps = broadcast(s[EPS]), mom = broadcast(s[MOMENTUM]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector sq = load(squareAvg, i).fma(alpha, g.mul(g).mul(oneMinusAlpha));
                store(sq, squareAvg, i);
                FloatVector avg = sq;
                if (centered) {
                    FloatVector a = load(gradAvg, i).fma(alpha, g.mul(oneMinusAlpha));
                    store(a, gradAvg, i);
                    avg = a.neg().fma(a, sq);
                }
                FloatVector step = g.div(avg.sqrt().add(eps));
                if (momentum) {
                    step = load(momentumBuffer, i).fma(mom, step);
                    store(step, momentumBuffer, i);
                }
                store(step.fma(negLr, p), param, i);
            }
        }
    }
}
