package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Adam;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.TorchOptimizer;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import jdk.incubator.vector.FloatVector;

/** {@link Adam} (and AdamW): kernels/adam.cu. The formulas are {@link Adam}'s Javadoc. */
public final class AdamAlgorithm extends Algorithm<Adam> {
    // The hyper-parameter row after lr and weight decay.
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1, H_EPS = H_FIRST_OWN + 2;
    // struct AdamScalars
    public static final int NEG_STEP_SIZE = 0, INV_SQRT_BC2 = 1, BETA1 = 2, ONE_MINUS_BETA1 = 3, BETA2 = 4,
            ONE_MINUS_BETA2 = 5, EPS = 6, WEIGHT_DECAY = 7, DECAY_FACTOR = 8, COUNT = 9;

    static final UpdateKernel KERNEL = new Kernel();

    public AdamAlgorithm() {
        super(Adam.class);
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
    public UpdatePlan plan(Adam c) {
        boolean decay = (float) c.weightDecay() != 0f;
        boolean decoupled = c.weightDecayMode() == Adam.WeightDecay.DECOUPLED;
        int flags = (c.maximize() ? MAXIMIZE : 0)
                | (decay && !decoupled ? L2_DECAY : 0)
                | (decay && decoupled ? DECOUPLED_DECAY : 0)
                | (c.amsgrad() ? AMSGRAD : 0)
                | (c.form() == Adam.Form.STEP_SIZE ? STEP_SIZE_FORM : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {
            StateKind.EXP_AVG, StateKind.EXP_AVG_SQ, c.amsgrad() ? StateKind.MAX_EXP_AVG_SQ : null}, flags);
    }

    @Override
    protected void ownHyperParameters(Adam c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(Adam c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Adam> variants() {
        Map<String, Adam> v = new LinkedHashMap<>();
        v.put("adam", Adam.builder().optLearningRate(1e-2).build());
        v.put("adam-step-size", Adam.builder().optLearningRate(1e-2).optForm(Adam.Form.STEP_SIZE).build());
        v.put("adam-amsgrad", Adam.builder().optLearningRate(1e-2).optAmsgrad(true).build());
        v.put("adam-l2", Adam.builder().optLearningRate(1e-2).optWeightDecay(0.05).build());
        v.put("adamw", Adam.adamW().optLearningRate(1e-2).build());
        v.put("adam-maximize", Adam.builder().optLearningRate(1e-2).optMaximize(true).build());
        v.put("adamw-amsgrad-step-size", Adam.adamW().optLearningRate(1e-2).optAmsgrad(true)
                .optForm(Adam.Form.STEP_SIZE).optBetas(0.8, 0.99).optEpsilon(1e-6).build());
        return v;
    }

    @Override
    public Map<String, Adam> benchmarkConfigs() {
        Map<String, Adam> configs = new LinkedHashMap<>();
        configs.put("adam", Adam.builder().build());
        configs.put("adamw", Adam.adamW().build());
        return configs;
    }

    /**
     * torch.optim.Adam (L2 decay) or AdamW (decoupled decay): the paper form only (PyTorch has no
     * step-size form).
     */
    @Override
    public Optional<TorchOptimizer> torchEquivalent(Adam c) {
        if (c.form() != Adam.Form.PAPER) return Optional.empty();
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("betas", List.of(c.beta1(), c.beta2()));
        a.put("eps", c.epsilon());
        a.put("weight_decay", c.weightDecay());
        a.put("amsgrad", c.amsgrad());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer(c.weightDecayMode() == Adam.WeightDecay.DECOUPLED ? "AdamW" : "Adam", a));
    }

    @Override
    public Map<String, Adam> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.3;
            case SPIRALS -> 0.01;
        };
        return Map.of("Adam (lr " + lr + ")", Adam.builder().optLearningRate(lr).build());
    }

    /** Kingma and Ba, "Adam: A Method for Stochastic Optimization" (arXiv:1412.6980). */
    @Override
    public int publicationYear() {
        return 2014;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("ADAM", "adam", "fusedopt_adam", 3, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double lr = lrF;
            double beta1 = hyper[h + H_BETA1];
            double beta2 = hyper[h + H_BETA2];
            float wd = hyper[h + H_WEIGHT_DECAY];
            double bc1 = 1.0 - StepScalars.powerBySquaring(beta1, step);
            double bc2 = 1.0 - StepScalars.powerBySquaring(beta2, step);
            if (has(flags, STEP_SIZE_FORM)) {
                out[o + NEG_STEP_SIZE] = (float) -(lr * Math.sqrt(bc2) / bc1);
                out[o + INV_SQRT_BC2] = 1f;
            } else {
                out[o + NEG_STEP_SIZE] = (float) -(lr / bc1);
                out[o + INV_SQRT_BC2] = (float) (1.0 / Math.sqrt(bc2));
            }
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = wd;
            out[o + DECAY_FACTOR] = (float) (1.0 - lr * wd);
        }

        /** Slots: exp_avg, exp_avg_sq, max_exp_avg_sq (null unless AMSGrad). */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2], expAvgSq = o[first + 3],
                    maxExpAvgSq = o[first + 4];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                if (has(flags, DECOUPLED_DECAY)) p = p * s[DECAY_FACTOR];
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m = Math.fma(s[BETA1], expAvg.get(i), s[ONE_MINUS_BETA1] * g);
                float v = Math.fma(s[BETA2], expAvgSq.get(i), s[ONE_MINUS_BETA2] * (g * g));
                expAvg.put(i, m);
                expAvgSq.put(i, v);
                if (has(flags, AMSGRAD)) {
                    v = maxPropagatingNaN(maxExpAvgSq.get(i), v);
                    maxExpAvgSq.put(i, v);
                }
                float denom = Math.fma((float) Math.sqrt(v), s[INV_SQRT_BC2], s[EPS]);
                param.put(i, Math.fma(s[NEG_STEP_SIZE], m / denom, p));
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
            VectorOperand param = o[0], grad = o[1], expAvg = o[2], expAvgSq = o[3], maxExpAvgSq = o[4];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            boolean decoupled = has(flags, DECOUPLED_DECAY), amsgrad = has(flags, AMSGRAD);
            FloatVector negStepSize = broadcast(s[NEG_STEP_SIZE]), invSqrtBc2 = broadcast(s[INV_SQRT_BC2]);
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
                if (amsgrad) {
                    v = maxPropagatingNaN(load(maxExpAvgSq, i), v);
                    store(v, maxExpAvgSq, i);
                }
                FloatVector denom = v.sqrt().fma(invSqrtBc2, eps);
                store(m.div(denom).fma(negStepSize, p), param, i);
            }
        }
    }
}
