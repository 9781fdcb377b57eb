package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Lion;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/** {@link Lion}: kernels/lion.cu. The formulas are {@link Lion}'s Javadoc. */
public final class LionAlgorithm extends Algorithm<Lion> {
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1;
    // struct LionScalars
    public static final int NEG_LR = 0, BETA1 = 1, ONE_MINUS_BETA1 = 2, BETA2 = 3, ONE_MINUS_BETA2 = 4,
            DECAY_FACTOR = 5, COUNT = 6;

    static final UpdateKernel KERNEL = new Kernel();

    public LionAlgorithm() {
        super(Lion.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    /** The weight decay is always decoupled: the L2 flag is never set. */
    /** bitsandbytes has an 8-bit form of it. */
    @Override
    public boolean hasQuantizedStates() {
        return true;
    }

    @Override
    public UpdatePlan plan(Lion c) {
        int flags = (c.maximize() ? MAXIMIZE : 0) | ((float) c.weightDecay() != 0f ? DECOUPLED_DECAY : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.EXP_AVG}, flags);
    }

    @Override
    protected void ownHyperParameters(Lion c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
    }

    @Override
    protected double weightDecay(Lion c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Lion> variants() {
        Map<String, Lion> v = new LinkedHashMap<>();
        v.put("lion", Lion.builder().optLearningRate(1e-3).build());
        v.put("lion-decay-maximize", Lion.builder().optLearningRate(1e-3).optWeightDecay(0.1).optMaximize(true)
                .optBetas(0.95, 0.98).build());
        return v;
    }

    @Override
    public Map<String, Lion> benchmarkConfigs() {
        return Map.of("lion", Lion.builder().build());
    }

    /**
     * Lion's sign: 1 for x &gt; 0, -1 for x &lt; 0, +0 for either zero, NaN for NaN (kernels/lion.cu:
     * lion_sign). +0 for -0 too, so that fma(-lr, sign, p) leaves p's bits unchanged, -0 included.
     */
    private static float sign(float x) {
        return x > 0f ? 1f : x < 0f ? -1f : x == 0f ? 0f : x;
    }

    @Override
    public Map<String, Lion> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.1;
            case SPIRALS -> 0.001;
        };
        return Map.of("Lion (lr " + lr + ")", Lion.builder().optLearningRate(lr).build());
    }

    /** Chen et al., "Symbolic Discovery of Optimization Algorithms". */
    @Override
    public int publicationYear() {
        return 2023;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("LION", "lion", "fusedopt_lion", 1, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double lr = lrF;
            double beta1 = hyper[h + H_BETA1];
            double beta2 = hyper[h + H_BETA2];
            out[o + NEG_LR] = -lrF;
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            out[o + DECAY_FACTOR] = (float) (1.0 - lr * hyper[h + H_WEIGHT_DECAY]);
        }

        /** Slot: exp_avg. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                if (has(flags, DECOUPLED_DECAY)) p = p * s[DECAY_FACTOR];
                float g = grad.get(i);
                if (has(flags, MAXIMIZE)) g = -g;
                float m = expAvg.get(i);
                float c = Math.fma(s[BETA1], m, s[ONE_MINUS_BETA1] * g);
                param.put(i, Math.fma(s[NEG_LR], sign(c), p));
                expAvg.put(i, Math.fma(s[BETA2], m, s[ONE_MINUS_BETA2] * g));
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
            VectorOperand param = o[0], grad = o[1], expAvg = o[2];
            boolean maximize = has(flags, MAXIMIZE), decoupled = has(flags, DECOUPLED_DECAY);
            FloatVector negLr = broadcast(s[NEG_LR]), decayFactor = broadcast(s[DECAY_FACTOR]);
            FloatVector beta1 = broadcast(s[BETA1]), oneMinusBeta1 = broadcast(s[ONE_MINUS_BETA1]);
            FloatVector beta2 = broadcast(s[BETA2]), oneMinusBeta2 = broadcast(s[ONE_MINUS_BETA2]);
            FloatVector zero = broadcast(0f), one = broadcast(1f), minusOne = broadcast(-1f);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                if (decoupled) p = p.mul(decayFactor);
                FloatVector g = load(grad, i);
                if (maximize) g = g.neg();
                FloatVector m = load(expAvg, i);
                FloatVector c = m.fma(beta1, g.mul(oneMinusBeta1));
                FloatVector sign = zero.blend(one, c.compare(VectorOperators.GT, 0f))
                        .blend(minusOne, c.compare(VectorOperators.LT, 0f))
                        .blend(c, c.test(VectorOperators.IS_NAN));
                store(sign.fma(negLr, p), param, i);
                store(m.fma(beta2, g.mul(oneMinusBeta2)), expAvg, i);
            }
        }
    }
}
