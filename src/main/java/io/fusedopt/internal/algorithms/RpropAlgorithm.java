package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.ReferenceKernels.*;
import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;

import io.fusedopt.Rprop;
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
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * {@link Rprop}: kernels/rprop.cu. The formulas are {@link Rprop}'s Javadoc. The step's learning
 * rate is a scalar because it is the step size at a tensor's own first step (flag
 * {@code FIRST_STEP}), where PyTorch creates the state from the group's lr of that moment.
 */
public final class RpropAlgorithm extends Algorithm<Rprop> {
    static final int H_ETA_MINUS = H_FIRST_OWN, H_ETA_PLUS = H_FIRST_OWN + 1, H_STEP_SIZE_MIN = H_FIRST_OWN + 2,
            H_STEP_SIZE_MAX = H_FIRST_OWN + 3;
    // struct RpropScalars
    public static final int LR = 0, ETA_MINUS = 1, ETA_PLUS = 2, STEP_SIZE_MIN = 3, STEP_SIZE_MAX = 4, COUNT = 5;

    static final UpdateKernel KERNEL = new Kernel();

    public RpropAlgorithm() {
        super(Rprop.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Rprop c) {
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.PREV, StateKind.STEP_SIZE},
                UpdatePlan.commonFlags(c.maximize(), 0));
    }

    @Override
    protected void ownHyperParameters(Rprop c, float[] h) {
        h[H_ETA_MINUS] = (float) c.etaMinus();
        h[H_ETA_PLUS] = (float) c.etaPlus();
        h[H_STEP_SIZE_MIN] = (float) c.stepSizeMin();
        h[H_STEP_SIZE_MAX] = (float) c.stepSizeMax();
    }

    @Override
    protected double weightDecay(Rprop c) {
        return 0;
    }

    /**
     * step_size starts at lr, prev at 0: what the tensors hold until the tensor's first step, which
     * sets both itself (the step's lr may differ from this one: {@link Rprop}).
     */
    @Override
    public float initialValue(Rprop c, StateKind kind) {
        return kind == StateKind.STEP_SIZE ? (float) c.learningRate() : 0f;
    }

    /**
     * PyTorch's defaults; and maximize with etas and bounds that every few steps reach: lr above
     * stepSizeMax (clamped at the first step), growth into the upper bound and shrinking into the
     * lower one.
     */
    @Override
    public Map<String, Rprop> variants() {
        Map<String, Rprop> v = new LinkedHashMap<>();
        v.put("rprop", Rprop.builder().build());
        v.put("rprop-maximize-clamped", Rprop.builder().optLearningRate(0.05).optEtas(0.25, 1.5).optStepSizes(0.01, 0.04)
                .optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Rprop> benchmarkConfigs() {
        return Map.of("rprop", Rprop.builder().build());
    }

    /** sign(x) as torch.sign: 1, -1, +0 for both zeros; NaN stays NaN (kernels: fo_rprop_sign). */
    static float sign(float x) {
        return x > 0f ? 1f : x < 0f ? -1f : x == 0f ? 0f : x;
    }

    /** x clamped to [lo, hi]; NaN stays NaN (kernels: fo_rprop_clamp). */
    static float clamp(float x, float lo, float hi) {
        return x < lo ? lo : x > hi ? hi : x;
    }

    /** The step size's factor from d = g * prev: etaPlus, etaMinus, 1 for both zeros, NaN for NaN. */
    static float factor(float d, float etaMinus, float etaPlus) {
        return d > 0f ? etaPlus : d < 0f ? etaMinus : d == 0f ? 1f : d;
    }

    @Override
    public Optional<TorchOptimizer> torchEquivalent(Rprop c) {
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("lr", c.learningRate());
        a.put("etas", java.util.List.of(c.etaMinus(), c.etaPlus()));
        a.put("step_sizes", java.util.List.of(c.stepSizeMin(), c.stepSizeMax()));
        a.put("maximize", c.maximize());
        return Optional.of(new TorchOptimizer("Rprop", a));
    }

    @Override
    public Map<String, Rprop> demoConfigs(DemoProblem problem) {
        double lr = switch (problem) {
            case NARROW_VALLEY -> 0.1;
            case SPIRALS -> 0.01;
        };
        return Map.of("Rprop (lr " + lr + ")", Rprop.builder().optLearningRate(lr).build());
    }

    /** Riedmiller and Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP Algorithm". */
    @Override
    public int publicationYear() {
        return 1993;
    }

    private static final class Kernel extends UpdateKernel {
        Kernel() {
            super("RPROP", "rprop", "fusedopt_rprop", 2, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lr, int flags, long step, float[] out, int o) {
            out[o + LR] = lr;
            out[o + ETA_MINUS] = hyper[h + H_ETA_MINUS];
            out[o + ETA_PLUS] = hyper[h + H_ETA_PLUS];
            out[o + STEP_SIZE_MIN] = hyper[h + H_STEP_SIZE_MIN];
            out[o + STEP_SIZE_MAX] = hyper[h + H_STEP_SIZE_MAX];
        }

        /** Slots: prev, step_size. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], prevs = o[first + 2], stepSizes = o[first + 3];
            boolean firstStep = has(flags, FIRST_STEP);
            for (int i = from; i < to; i++) {
                float p = param.get(i);
                float g = effectiveGrad(grad.get(i), p, 0f, flags);
                float prev = firstStep ? 0f : prevs.get(i);
                float stepSize = firstStep ? s[LR] : stepSizes.get(i);
                float d = g * prev;
                stepSize = clamp(stepSize * factor(d, s[ETA_MINUS], s[ETA_PLUS]), s[STEP_SIZE_MIN], s[STEP_SIZE_MAX]);
                if (d < 0f) g = 0f;
                param.put(i, p + -sign(g) * stepSize);
                prevs.put(i, g);
                stepSizes.put(i, stepSize);
            }
        }

        @Override
        protected VectorUpdate newVectorUpdate() {
            return new Vectorized();
        }
    }

    /** {@link Kernel#reference} per lane: each ternary a blend on the same comparison. */
    private static final class Vectorized implements VectorUpdate {
        @Override
        public void run(VectorOperand[] o, int from, int to, float[] s, int flags) {
            VectorOperand param = o[0], grad = o[1], prevs = o[2], stepSizes = o[3];
            boolean maximize = has(flags, MAXIMIZE), firstStep = has(flags, FIRST_STEP);
            FloatVector zero = broadcast(0f), one = broadcast(1f), minusOne = broadcast(-1f), lr = broadcast(s[LR]);
            FloatVector etaMinus = broadcast(s[ETA_MINUS]), etaPlus = broadcast(s[ETA_PLUS]);
            FloatVector lo = broadcast(s[STEP_SIZE_MIN]), hi = broadcast(s[STEP_SIZE_MAX]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector p = load(param, i);
                FloatVector g = effectiveGrad(load(grad, i), p, zero, maximize, false);
                FloatVector prev = firstStep ? zero : load(prevs, i);
                FloatVector stepSize = firstStep ? lr : load(stepSizes, i);
                FloatVector d = g.mul(prev);
                VectorMask<Float> flipped = d.compare(VectorOperators.LT, 0f);
                FloatVector factor = d.blend(one, d.compare(VectorOperators.EQ, 0f)).blend(etaMinus, flipped)
                        .blend(etaPlus, d.compare(VectorOperators.GT, 0f));
                FloatVector grown = stepSize.mul(factor);
                stepSize = grown.blend(hi, grown.compare(VectorOperators.GT, hi)).blend(lo, grown.compare(VectorOperators.LT, lo));
                g = g.blend(zero, flipped);
                FloatVector sign = g.blend(zero, g.compare(VectorOperators.EQ, 0f)).blend(minusOne, g.compare(VectorOperators.LT, 0f))
                        .blend(one, g.compare(VectorOperators.GT, 0f));
                store(p.add(sign.neg().mul(stepSize)), param, i);
                store(g, prevs, i);
                store(stepSize, stepSizes, i);
            }
        }
    }
}
