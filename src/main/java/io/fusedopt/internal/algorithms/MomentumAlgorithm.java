package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Momentum;
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

/**
 * {@link Momentum} in its two forms, buffer (PyTorch's SGD with momentum) and velocity: two entry
 * points of kernels/sgd.cu. The formulas are {@link Momentum}'s Javadoc.
 */
public final class MomentumAlgorithm extends Algorithm<Momentum> {
    static final int H_MOMENTUM = H_FIRST_OWN, H_DAMPENING = H_FIRST_OWN + 1;
    // struct MomentumScalars
    public static final int NEG_LR = 0, WEIGHT_DECAY = 1, MU = 2, ONE_MINUS_DAMPENING = 3, COUNT = 4;

    static final UpdateKernel BUFFER = new Buffer();
    static final UpdateKernel VELOCITY = new Velocity();

    public MomentumAlgorithm() {
        super(Momentum.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(BUFFER, VELOCITY);
    }

    /** bitsandbytes has an 8-bit form of it. */
    @Override
    public boolean hasQuantizedStates() {
        return true;
    }

    @Override
    public UpdatePlan plan(Momentum c) {
        boolean buffer = c.form() == Momentum.Form.BUFFER;
        int flags = UpdatePlan.commonFlags(c.maximize(), c.weightDecay()) | (c.nesterov() ? NESTEROV : 0);
        return new UpdatePlan(buffer ? BUFFER : VELOCITY,
                new StateKind[] {buffer ? StateKind.MOMENTUM_BUFFER : StateKind.VELOCITY}, flags);
    }

    @Override
    protected void ownHyperParameters(Momentum c, float[] h) {
        h[H_MOMENTUM] = (float) c.momentum();
        h[H_DAMPENING] = (float) c.dampening();
    }

    @Override
    protected double weightDecay(Momentum c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Momentum> variants() {
        Map<String, Momentum> v = new LinkedHashMap<>();
        Momentum.Builder m = Momentum.builder().optLearningRate(0.05).setMomentum(0.9);
        v.put("momentum-buffer", m.build());
        v.put("momentum-buffer-dampening", m.optDampening(0.3).build());
        v.put("momentum-buffer-nesterov-l2", m.optDampening(0).optNesterov(true).optWeightDecay(0.01).build());
        v.put("momentum-velocity", Momentum.builder().optLearningRate(0.05).setMomentum(0.9).optForm(Momentum.Form.VELOCITY).build());
        v.put("momentum-velocity-nesterov-maximize", Momentum.builder().optLearningRate(0.05).setMomentum(0.8)
                .optForm(Momentum.Form.VELOCITY).optNesterov(true).optMaximize(true).optWeightDecay(0.01).build());
        return v;
    }

    /** Nesterov momentum 0.9, the usual choice. */
    @Override
    public Map<String, Momentum> benchmarkConfigs() {
        return Map.of("momentum", Momentum.builder().setMomentum(0.9).optNesterov(true).build());
    }

    /** torch.optim.SGD with momentum: the buffer form only (PyTorch has no velocity form). */
    @Override
    public Optional<TorchOptimizer> torchEquivalent(Momentum c) {
        if (c.form() != Momentum.Form.BUFFER) return Optional.empty();
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("momentum", c.momentum());
        a.put("dampening", c.dampening());
        a.put("weight_decay", c.weightDecay());
        a.put("nesterov", c.nesterov());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("SGD", a));
    }

    /** Heavy-ball and Nesterov momentum 0.9 at the same rate, on both problems. */
    @Override
    public Map<String, Momentum> demoConfigs(DemoProblem problem) {
        Momentum.Builder m = Momentum.builder().optLearningRate(0.1).setMomentum(0.9);
        Map<String, Momentum> configs = new LinkedHashMap<>();
        configs.put("Momentum (lr 0.1, 0.9)", m.build());
        configs.put("Nesterov (lr 0.1, 0.9)", m.optNesterov(true).build());
        return configs;
    }

    /** Polyak, "Some methods of speeding up the convergence of iteration methods" (heavy ball). */
    @Override
    public int publicationYear() {
        return 1964;
    }

    /** The scalars both forms share. */
    private abstract static class MomentumKernel extends UpdateKernel {
        MomentumKernel(String name, String entryPoint) {
            super(name, "sgd", entryPoint, 1, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lr, int flags, long step, float[] out, int o) {
            out[o + NEG_LR] = -lr;
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
            out[o + MU] = hyper[h + H_MOMENTUM];
            out[o + ONE_MINUS_DAMPENING] = (float) (1.0 - hyper[h + H_DAMPENING]);
        }
    }

    private static final class Buffer extends MomentumKernel {
        Buffer() {
            super("MOMENTUM_BUFFER", "fusedopt_momentum_buffer");
        }

        /** Slot: momentum_buffer, which the first step sets to the gradient. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], buffer = o[first + 2];
            float mu = s[MU];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float b = has(flags, FIRST_STEP) ? g : Math.fma(mu, buffer.get(i), s[ONE_MINUS_DAMPENING] * g);
                float d = has(flags, NESTEROV) ? Math.fma(mu, b, g) : b;
                buffer.put(i, b);
                param.put(i, Math.fma(s[NEG_LR], d, p));
            }
        }

        @Override
        protected VectorUpdate newVectorUpdate() {
            return new BufferVectorized();
        }
    }

    private static final class Velocity extends MomentumKernel {
        Velocity() {
            super("MOMENTUM_VELOCITY", "fusedopt_momentum_velocity");
        }

        /** Slot: velocity. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], velocity = o[first + 2];
            float mu = s[MU];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float a = s[NEG_LR] * g;
                float v = Math.fma(mu, velocity.get(i), a);
                velocity.put(i, v);
                param.put(i, has(flags, NESTEROV) ? Math.fma(mu, v, p + a) : p + v);
            }
        }

        @Override
        protected VectorUpdate newVectorUpdate() {
            return new VelocityVectorized();
        }
    }

    /** {@link Buffer#reference} per lane. */
    private static final class BufferVectorized implements VectorUpdate {
        @Override
        public void run(VectorOperand[] o, int from, int to, float[] s, int flags) {
            VectorOperand param = o[0], grad = o[1], buffer = o[2];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            boolean first = has(flags, FIRST_STEP), nesterov = has(flags, NESTEROV);
            FloatVector negLr = broadcast(s[NEG_LR]), wd = broadcast(s[WEIGHT_DECAY]);
            FloatVector mu = broadcast(s[MU]), oneMinusDampening = broadcast(s[ONE_MINUS_DAMPENING]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector b = first ? g : load(buffer, i).fma(mu, g.mul(oneMinusDampening));
                FloatVector d = nesterov ? b.fma(mu, g) : b;
                store(b, buffer, i);
                store(d.fma(negLr, p), param, i);
            }
        }
    }

    /** {@link Velocity#reference} per lane. */
    private static final class VelocityVectorized implements VectorUpdate {
        @Override
        public void run(VectorOperand[] o, int from, int to, float[] s, int flags) {
            VectorOperand param = o[0], grad = o[1], velocity = o[2];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY), nesterov = has(flags, NESTEROV);
            FloatVector negLr = broadcast(s[NEG_LR]), wd = broadcast(s[WEIGHT_DECAY]), mu = broadcast(s[MU]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector a = g.mul(negLr);
                FloatVector v = load(velocity, i).fma(mu, a);
                store(v, velocity, i);
                store(nesterov ? v.fma(mu, p.add(a)) : p.add(v), param, i);
            }
        }
    }
}
