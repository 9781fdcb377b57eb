package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Sgd;
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

/** Plain {@link Sgd}: kernels/sgd.cu, entry point fusedopt_sgd. The formula is {@link Sgd}'s Javadoc. */
public final class SgdAlgorithm extends Algorithm<Sgd> {
    // struct SgdScalars
    public static final int NEG_LR = 0, WEIGHT_DECAY = 1, COUNT = 2;

    static final UpdateKernel KERNEL = new Kernel();

    public SgdAlgorithm() {
        super(Sgd.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Sgd c) {
        return new UpdatePlan(KERNEL, new StateKind[0], UpdatePlan.commonFlags(c.maximize(), c.weightDecay()));
    }

    @Override
    protected void ownHyperParameters(Sgd c, float[] h) {
        // learning rate and weight decay only
    }

    @Override
    protected double weightDecay(Sgd c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Sgd> variants() {
        Map<String, Sgd> v = new LinkedHashMap<>();
        v.put("sgd", Sgd.builder().optLearningRate(0.05).build());
        v.put("sgd-l2", Sgd.builder().optLearningRate(0.05).optWeightDecay(0.01).build());
        v.put("sgd-maximize", Sgd.builder().optLearningRate(0.05).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Sgd> benchmarkConfigs() {
        return Map.of("sgd", Sgd.builder().build());
    }

    /** torch.optim.SGD without momentum. */
    @Override
    public Optional<TorchOptimizer> torchEquivalent(Sgd c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("momentum", 0.0);
        a.put("dampening", 0.0);
        a.put("weight_decay", c.weightDecay());
        a.put("nesterov", false);
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("SGD", a));
    }

    @Override
    public Map<String, Sgd> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.9;
            case SPIRALS -> 0.5;
        };
        return Map.of("SGD (lr " + lr + ")", Sgd.builder().optLearningRate(lr).build());
    }

    /** Robbins and Monro, "A Stochastic Approximation Method". */
    @Override
    public int publicationYear() {
        return 1951;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("SGD", "sgd", "fusedopt_sgd", 0, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lr, int flags, long step, float[] out, int o) {
            out[o + NEG_LR] = -lr;
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
        }

        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                param.put(i, Math.fma(s[NEG_LR], g, p));
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
            VectorOperand param = o[0], grad = o[1];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            FloatVector negLr = broadcast(s[NEG_LR]), wd = broadcast(s[WEIGHT_DECAY]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                store(g.fma(negLr, p), param, i);
            }
        }
    }
}
