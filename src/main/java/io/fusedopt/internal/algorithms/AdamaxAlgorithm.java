package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Adamax;
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
import jdk.incubator.vector.VectorOperators;

/** {@link Adamax}: kernels/adamax.cu. The formulas are {@link Adamax}'s Javadoc. */
public final class AdamaxAlgorithm extends Algorithm<Adamax> {
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1, H_EPS = H_FIRST_OWN + 2;
    // struct AdamaxScalars
    public static final int NEG_CLR = 0, BETA1 = 1, ONE_MINUS_BETA1 = 2, BETA2 = 3, EPS = 4, WEIGHT_DECAY = 5,
            COUNT = 6;
    /** Every bit of a float but the sign: |x| by clearing it, the same bits on every path (NaN included). */
    private static final int MAGNITUDE_BITS = 0x7fffffff;

    static final UpdateKernel KERNEL = new Kernel();

    public AdamaxAlgorithm() {
        super(Adamax.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Adamax c) {
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.EXP_AVG, StateKind.EXP_INF},
                UpdatePlan.commonFlags(c.maximize(), c.weightDecay()));
    }

    @Override
    protected void ownHyperParameters(Adamax c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(Adamax c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Adamax> variants() {
        Map<String, Adamax> v = new LinkedHashMap<>();
        v.put("adamax", Adamax.builder().optLearningRate(1e-2).build());
        v.put("adamax-l2-maximize", Adamax.builder().optLearningRate(1e-2).optBetas(0.8, 0.99).optEpsilon(1e-6)
                .optWeightDecay(0.05).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Adamax> benchmarkConfigs() {
        return Map.of("adamax", Adamax.builder().build());
    }

    /** |x| with the sign bit cleared (Math.abs keeps a NaN's sign in JDK 17's interpreter). */
    static float magnitude(float x) {
        return Float.intBitsToFloat(Float.floatToRawIntBits(x) & MAGNITUDE_BITS);
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(Adamax c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("betas", java.util.List.of(c.beta1(), c.beta2()));
        a.put("eps", c.epsilon());
        a.put("weight_decay", c.weightDecay());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("Adamax", a));
    }

    @Override
    public Map<String, Adamax> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.3;
            case SPIRALS -> 0.02;
        };
        return Map.of("Adamax (lr " + lr + ")", Adamax.builder().optLearningRate(lr).build());
    }

    /** Kingma and Ba, "Adam: A Method for Stochastic Optimization" (section 7.1). */
    @Override
    public int publicationYear() {
        return 2014;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("ADAMAX", "adamax", "fusedopt_adamax", 2, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double beta1 = hyper[h + H_BETA1];
            double bc1 = 1.0 - StepScalars.powerBySquaring(beta1, step);
            out[o + NEG_CLR] = (float) -(lrF / bc1);
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
        }

        /** Slots: exp_avg, exp_inf. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2], expInf = o[first + 3];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m = Math.fma(s[BETA1], expAvg.get(i), s[ONE_MINUS_BETA1] * g);
                float u = maxPropagatingNaN(s[BETA2] * expInf.get(i), magnitude(g) + s[EPS]);
                expAvg.put(i, m);
                expInf.put(i, u);
                param.put(i, Math.fma(s[NEG_CLR], m / u, p));
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
            VectorOperand param = o[0], grad = o[1], expAvg = o[2], expInf = o[3];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            FloatVector negClr = broadcast(s[NEG_CLR]), beta1 = broadcast(s[BETA1]);
            FloatVector oneMinusBeta1 = broadcast(s[ONE_MINUS_BETA1]), beta2 = broadcast(s[BETA2]);
            FloatVector eps = broadcast(s[EPS]), wd = broadcast(s[WEIGHT_DECAY]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector m = load(expAvg, i).fma(beta1, g.mul(oneMinusBeta1));
                FloatVector magnitude = g.viewAsIntegralLanes().lanewise(VectorOperators.AND, MAGNITUDE_BITS)
                        .viewAsFloatingLanes();
                FloatVector u = maxPropagatingNaN(load(expInf, i).mul(beta2), magnitude.add(eps));
                store(m, expAvg, i);
                store(u, expInf, i);
                store(m.div(u).fma(negClr, p), param, i);
            }
        }
    }
}
