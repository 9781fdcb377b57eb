package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Asgd;
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

/** {@link Asgd}: kernels/asgd.cu. The formulas are {@link Asgd}'s Javadoc. */
public final class AsgdAlgorithm extends Algorithm<Asgd> {
    static final int H_LAMBD = H_FIRST_OWN, H_ALPHA = H_FIRST_OWN + 1, H_T0 = H_FIRST_OWN + 2;
    // struct AsgdScalars
    public static final int NEG_ETA = 0, DECAY = 1, WEIGHT_DECAY = 2, MU = 3, COUNT = 4;

    static final UpdateKernel KERNEL = new Kernel();

    public AsgdAlgorithm() {
        super(Asgd.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Asgd c) {
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.AX}, UpdatePlan.commonFlags(c.maximize(), c.weightDecay()));
    }

    @Override
    protected void ownHyperParameters(Asgd c, float[] h) {
        h[H_LAMBD] = (float) c.lambd();
        h[H_ALPHA] = (float) c.alpha();
        h[H_T0] = (float) c.t0();
    }

    @Override
    protected double weightDecay(Asgd c) {
        return c.weightDecay();
    }

    /**
     * Few steps run in the shared suites (three in the vector-path test), so every variant sets a
     * small t0 (mu != 1 from step t0 + 3: step 3 and step 4) and a lambd large enough that eta and
     * the decay change visibly from step to step.
     */
    @Override
    public Map<String, Asgd> variants() {
        Map<String, Asgd> v = new LinkedHashMap<>();
        v.put("asgd", Asgd.builder().optLearningRate(0.05).optLambd(0.5).optT0(0).build());
        v.put("asgd-l2-maximize", Asgd.builder().optLearningRate(0.05).optLambd(0.1).optAlpha(0.5).optT0(1)
                .optWeightDecay(0.01).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Asgd> benchmarkConfigs() {
        return Map.of("asgd", Asgd.builder().build());
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(Asgd c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("lambd", c.lambd());
        a.put("alpha", c.alpha());
        a.put("t0", c.t0());
        a.put("weight_decay", c.weightDecay());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("ASGD", a));
    }

    @Override
    public Map<String, Asgd> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.9;
            case SPIRALS -> 0.5;
        };
        return Map.of("ASGD (lr " + lr + ")", Asgd.builder().optLearningRate(lr).build());
    }

    /** Polyak and Juditsky, "Acceleration of Stochastic Approximation by Averaging". */
    @Override
    public int publicationYear() {
        return 1992;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("ASGD", "asgd", "fusedopt_asgd", 1, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double lambd = hyper[h + H_LAMBD];
            double stepsBefore = (double) (step - 1);
            double base = 1.0 + lambd * lrF * stepsBefore;
            float eta = (float) (lrF / StepScalars.pow(base, hyper[h + H_ALPHA]));
            double sinceT0 = stepsBefore - hyper[h + H_T0];
            out[o + NEG_ETA] = -eta;
            out[o + DECAY] = (float) (1.0 - lambd * eta);
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
            out[o + MU] = (float) (1.0 / (sinceT0 > 1.0 ? sinceT0 : 1.0));
        }

        /** Slot: ax. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], ax = o[first + 2];
            float mu = s[MU];
            boolean averaging = mu != 1f;
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                p = Math.fma(s[NEG_ETA], g, p * s[DECAY]);
                param.put(i, p);
                float a = ax.get(i);
                ax.put(i, averaging ? a + (p - a) * mu : p);
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
            VectorOperand param = o[0], grad = o[1], ax = o[2];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY), averaging = s[MU] != 1f;
            FloatVector negEta = broadcast(s[NEG_ETA]), decay = broadcast(s[DECAY]), wd = broadcast(s[WEIGHT_DECAY]);
            FloatVector mu = broadcast(s[MU]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                p = g.fma(negEta, p.mul(decay));
                store(p, param, i);
                if (averaging) {
                    FloatVector a = load(ax, i);
                    store(a.add(p.sub(a).mul(mu)), ax, i);
                } else {
                    store(p, ax, i);
                }
            }
        }
    }
}
