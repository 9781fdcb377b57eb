package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Adadelta;
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

/** {@link Adadelta}: kernels/adadelta.cu. The formulas are {@link Adadelta}'s Javadoc. */
public final class AdadeltaAlgorithm extends Algorithm<Adadelta> {
    static final int H_RHO = H_FIRST_OWN, H_EPS = H_FIRST_OWN + 1;
    // struct AdadeltaScalars
    public static final int NEG_LR = 0, RHO = 1, ONE_MINUS_RHO = 2, EPS = 3, WEIGHT_DECAY = 4, COUNT = 5;

    static final UpdateKernel KERNEL = new Kernel();

    public AdadeltaAlgorithm() {
        super(Adadelta.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Adadelta c) {
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.SQUARE_AVG, StateKind.ACC_DELTA},
                UpdatePlan.commonFlags(c.maximize(), c.weightDecay()));
    }

    @Override
    protected void ownHyperParameters(Adadelta c, float[] h) {
        h[H_RHO] = (float) c.rho();
        h[H_EPS] = (float) c.epsilon();
    }

    @Override
    protected double weightDecay(Adadelta c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Adadelta> variants() {
        Map<String, Adadelta> v = new LinkedHashMap<>();
        v.put("adadelta", Adadelta.builder().build());
        v.put("adadelta-l2-maximize", Adadelta.builder().optLearningRate(0.5).optRho(0.95).optEpsilon(1e-5)
                .optWeightDecay(0.05).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Adadelta> benchmarkConfigs() {
        return Map.of("adadelta", Adadelta.builder().build());
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(Adadelta c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("rho", c.rho());
        a.put("eps", c.epsilon());
        a.put("weight_decay", c.weightDecay());
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("Adadelta", a));
    }

    @Override
    public Map<String, Adadelta> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 1.0;
            case SPIRALS -> 1.0;
        };
        return Map.of("Adadelta (lr " + lr + ")", Adadelta.builder().optLearningRate(lr).build());
    }

    /** Zeiler, "ADADELTA: An Adaptive Learning Rate Method". */
    @Override
    public int publicationYear() {
        return 2012;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("ADADELTA", "adadelta", "fusedopt_adadelta", 2, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            out[o + NEG_LR] = -lrF;
            out[o + RHO] = hyper[h + H_RHO];
            out[o + ONE_MINUS_RHO] = (float) (1.0 - hyper[h + H_RHO]);
            out[o + EPS] = hyper[h + H_EPS];
            out[o + WEIGHT_DECAY] = hyper[h + H_WEIGHT_DECAY];
        }

        /** Slots: square_avg, acc_delta. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], squareAvg = o[first + 2], accDelta = o[first + 3];
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, s[WEIGHT_DECAY], flags);
                float sq = Math.fma(s[RHO], squareAvg.get(i), s[ONE_MINUS_RHO] * (g * g));
                float std = (float) Math.sqrt(sq + s[EPS]);
                float a = accDelta.get(i);
                float delta = ((float) Math.sqrt(a + s[EPS]) / std) * g;
                squareAvg.put(i, sq);
                accDelta.put(i, Math.fma(s[RHO], a, s[ONE_MINUS_RHO] * (delta * delta)));
                param.put(i, Math.fma(s[NEG_LR], delta, p));
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
            VectorOperand param = o[0], grad = o[1], squareAvg = o[2], accDelta = o[3];
            boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
            FloatVector negLr = broadcast(s[NEG_LR]), rho = broadcast(s[RHO]);
            FloatVector oneMinusRho = broadcast(s[ONE_MINUS_RHO]), eps = broadcast(s[EPS]);
            FloatVector wd = broadcast(s[WEIGHT_DECAY]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
                FloatVector sq = load(squareAvg, i).fma(rho, g.mul(g).mul(oneMinusRho));
                FloatVector std = sq.add(eps).sqrt();
                FloatVector a = load(accDelta, i);
                FloatVector delta = a.add(eps).sqrt().div(std).mul(g);
                store(sq, squareAvg, i);
                store(a.fma(rho, delta.mul(delta).mul(oneMinusRho)), accDelta, i);
                store(delta.fma(negLr, p), param, i);
            }
        }
    }
}
