package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Adagrad;
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

/** {@link Adagrad}: kernels/adagrad.cu. The formulas are {@link Adagrad}'s Javadoc. */
public final class AdagradAlgorithm extends Algorithm<Adagrad> {
    static final int H_LR_DECAY = H_FIRST_OWN, H_EPS = H_FIRST_OWN + 1;
    // struct AdagradScalars
    public static final int NEG_CLR = 0, WEIGHT_DECAY = 1, EPS = 2, COUNT = 3;

    static final UpdateKernel KERNEL = new Kernel();

    public AdagradAlgorithm() {
        super(Adagrad.class);
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
    public UpdatePlan plan(Adagrad c) {
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.SUM}, UpdatePlan.commonFlags(c.maximize(), c.weightDecay()));
    }

    @Override
    protected void ownHyperParameters(Adagrad c, float[] h) {
        h[H_LR_DECAY] = (float) c.lrDecay();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(Adagrad c) {
        return c.weightDecay();
    }

    @Override
    public float initialValue(Adagrad c, StateKind kind) {
        return kind == StateKind.SUM ? (float) c.initialAccumulatorValue() : 0f;
    }

    @Override
    public Map<String, Adagrad> variants() {
        Map<String, Adagrad> v = new LinkedHashMap<>();
        v.put("adagrad", Adagrad.builder().optLearningRate(0.05).build());
        v.put("adagrad-decay-initial", Adagrad.builder().optLearningRate(0.05).optLrDecay(0.1)
                .optInitialAccumulatorValue(0.1).build());
        v.put("adagrad-l2-maximize", Adagrad.builder().optLearningRate(0.05).optWeightDecay(0.01).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Adagrad> benchmarkConfigs() {
        return Map.of("adagrad", Adagrad.builder().build());
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(Adagrad c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("lr_decay", c.lrDecay());
        a.put("weight_decay", c.weightDecay());
        a.put("initial_accumulator_value", c.initialAccumulatorValue());
        a.put("eps", c.epsilon());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("Adagrad", a));
    }

    @Override
    public Map<String, Adagrad> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.5;
            case SPIRALS -> 0.1;
        };
        return Map.of("Adagrad (lr " + lr + ")", Adagrad.builder().optLearningRate(lr).build());
    }

    /** Duchi, Hazan and Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization". */
    @Override
    public int publicationYear() {
        return 2011;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("ADAGRAD", "adagrad", "fusedopt_adagrad", 1, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double decayed = 1.0 + (double) (step - 1) * hyper[h + H_LR_DECAY];
            out[o + NEG_CLR] = (float) -(lrF / decayed);
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
            out[o + EPS] = hyper[h + H_EPS];
        }

        /** Slot: sum. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], sum = o[first + 2];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float h = Math.fma(g, g, sum.get(i));
                sum.put(i, h);
                param.put(i, Math.fma(s[NEG_CLR], g / ((float) Math.sqrt(h) + s[EPS]), p));
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
            VectorOperand param = o[0], grad = o[1], sum = o[2];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            FloatVector negClr = broadcast(s[NEG_CLR]), wd = broadcast(s[WEIGHT_DECAY]), eps = broadcast(s[EPS]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector h = g.fma(g, load(sum, i));
                store(h, sum, i);
                store(g.div(h.sqrt().add(eps)).fma(negClr, p), param, i);
            }
        }
    }
}
