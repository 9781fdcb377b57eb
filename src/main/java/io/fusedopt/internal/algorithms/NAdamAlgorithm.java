package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.NAdam;
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

/** {@link NAdam} (and NAdamW): kernels/nadam.cu. The formulas are {@link NAdam}'s Javadoc. */
public final class NAdamAlgorithm extends Algorithm<NAdam> {
    // The hyper-parameter row after lr and weight decay.
    static final int H_BETA1 = H_FIRST_OWN, H_BETA2 = H_FIRST_OWN + 1, H_EPS = H_FIRST_OWN + 2,
            H_MOMENTUM_DECAY = H_FIRST_OWN + 3;
    // struct NAdamScalars
    public static final int NEG_GRAD_COEF = 0, NEG_MOMENTUM_COEF = 1, BC2 = 2, BETA1 = 3, ONE_MINUS_BETA1 = 4,
            BETA2 = 5, ONE_MINUS_BETA2 = 6, EPS = 7, WEIGHT_DECAY = 8, DECAY_FACTOR = 9, COUNT = 10;

    /** Below this the running product counts as exactly 0 (see {@link #muProduct}). */
    static final double PRODUCT_FLOOR = 0x1p-60;

    static final UpdateKernel KERNEL = new Kernel();

    public NAdamAlgorithm() {
        super(NAdam.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(NAdam c) {
        boolean decay = (float) c.weightDecay() != 0f;
        int flags = (c.maximize() ? MAXIMIZE : 0)
                | (decay && !c.decoupledWeightDecay() ? L2_DECAY : 0)
                | (decay && c.decoupledWeightDecay() ? DECOUPLED_DECAY : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.EXP_AVG, StateKind.EXP_AVG_SQ, null}, flags);
    }

    @Override
    protected void ownHyperParameters(NAdam c, float[] h) {
        h[H_BETA1] = (float) c.beta1();
        h[H_BETA2] = (float) c.beta2();
        h[H_EPS] = (float) c.epsilon();
        h[H_MOMENTUM_DECAY] = (float) c.momentumDecay();
    }

    @Override
    protected double weightDecay(NAdam c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, NAdam> variants() {
        Map<String, NAdam> v = new LinkedHashMap<>();
        v.put("nadam", NAdam.builder().optLearningRate(1e-2).build());
        v.put("nadam-l2", NAdam.builder().optLearningRate(1e-2).optWeightDecay(0.05).optBetas(0.85, 0.99)
                .optMomentumDecay(1e-2).optEpsilon(1e-6).build());
        v.put("nadamw-maximize", NAdam.builder().optLearningRate(1e-2).optWeightDecay(0.05)
                .optDecoupledWeightDecay(true).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, NAdam> benchmarkConfigs() {
        Map<String, NAdam> configs = new LinkedHashMap<>();
        configs.put("nadam", NAdam.builder().build());
        return configs;
    }

    /**
     * mu_1 * mu_2 * ... * mu_t with mu_i = beta1 * (1 - 0.5 * q^i), q^i by repeated multiplication:
     * exactly as {@code fo_nadam_mu_product} in kernels/nadam.cu computes it, operation for
     * operation, and 0 once a partial product falls below 2^-60.
     *
     * <p>Why 0 there changes no bit of the scalars: the product P enters them only as {@code 1 - P}
     * and {@code 1 - P * muNext}. Every mu_i lies in [0, beta1) with beta1 &lt; 1 (q^i is in [0, 1]),
     * so the partial products never grow, and every later step's P, and P * muNext, stays in
     * [0, 2^-60). For x in [0, 2^-60) the exact 1 - x lies in (1 - 2^-60, 1], closer to 1 than half
     * the spacing of the doubles just below 1 (2^-54), so the double 1 - x is exactly 1.0, which is
     * also 1 - 0. The loop therefore runs min(t, k) times, with k the first i at which the partial
     * product is below 2^-60 (see {@link NAdam} for its size).
     */
    static double muProduct(double beta1, double q, long step) {
        double product = 1.0;
        double qPower = 1.0;
        for (long i = 1; i <= step; i++) {
            qPower = qPower * q;
            product = product * (beta1 * (1.0 - 0.5 * qPower));
            if (product < PRODUCT_FLOOR) return 0.0;
        }
        return product;
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(NAdam c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("betas", java.util.List.of(c.beta1(), c.beta2()));
        a.put("eps", c.epsilon());
        a.put("weight_decay", c.weightDecay());
        a.put("momentum_decay", c.momentumDecay());
        // Newer than torch 1.13: named only when on, so the defaults run on any torch.
        if (c.decoupledWeightDecay()) a.put("decoupled_weight_decay", true);
        if (c.maximize()) a.put("maximize", true);
        return Optional.of(new TorchOptimizer("NAdam", a));
    }

    @Override
    public Map<String, NAdam> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.3;
            case SPIRALS -> 0.01;
        };
        return Map.of("NAdam (lr " + lr + ")", NAdam.builder().optLearningRate(lr).build());
    }

    /** Dozat, "Incorporating Nesterov Momentum into Adam". */
    @Override
    public int publicationYear() {
        return 2016;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("NADAM", "nadam", "fusedopt_nadam", 3, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double lr = lrF;
            double beta1 = hyper[h + H_BETA1];
            double beta2 = hyper[h + H_BETA2];
            float wd = hyper[h + H_WEIGHT_DECAY];
            double q = StepScalars.pow(0.96, hyper[h + H_MOMENTUM_DECAY]);
            double qPowerT = StepScalars.powerBySquaring(q, step);
            double mu = beta1 * (1.0 - 0.5 * qPowerT);
            double muNext = beta1 * (1.0 - 0.5 * (qPowerT * q));
            double muProduct = muProduct(beta1, q, step);
            double muProductNext = muProduct * muNext;
            out[o + NEG_GRAD_COEF] = (float) -(lr * (1.0 - mu) / (1.0 - muProduct));
            out[o + NEG_MOMENTUM_COEF] = (float) -(lr * muNext / (1.0 - muProductNext));
            out[o + BC2] = (float) (1.0 - StepScalars.powerBySquaring(beta2, step));
            out[o + BETA1] = hyper[h + H_BETA1];
            out[o + ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[o + BETA2] = hyper[h + H_BETA2];
            out[o + ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = wd;
            out[o + DECAY_FACTOR] = (float) (1.0 - lr * wd);
        }

        /** Slots: exp_avg, exp_avg_sq (the third is unused). */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], expAvg = o[first + 2], expAvgSq = o[first + 3];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                if (has(flags, DECOUPLED_DECAY)) p = p * s[DECAY_FACTOR];
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float m = Math.fma(s[BETA1], expAvg.get(i), s[ONE_MINUS_BETA1] * g);
                float v = Math.fma(s[BETA2], expAvgSq.get(i), s[ONE_MINUS_BETA2] * (g * g));
                expAvg.put(i, m);
                expAvgSq.put(i, v);
                float denom = (float) Math.sqrt(v / s[BC2]) + s[EPS];
                p = Math.fma(s[NEG_GRAD_COEF], g / denom, p);
                param.put(i, Math.fma(s[NEG_MOMENTUM_COEF], m / denom, p));
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
            boolean decoupled = has(flags, DECOUPLED_DECAY);
            FloatVector negGradCoef = broadcast(s[NEG_GRAD_COEF]), negMomentumCoef = broadcast(s[NEG_MOMENTUM_COEF]);
            FloatVector bc2 = broadcast(s[BC2]);
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
                FloatVector denom = v.div(bc2).sqrt().add(eps);
                p = g.div(denom).fma(negGradCoef, p);
                store(m.div(denom).fma(negMomentumCoef, p), param, i);
            }
        }
    }
}
