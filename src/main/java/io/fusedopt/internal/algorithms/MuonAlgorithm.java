package io.fusedopt.internal.algorithms;

import static io.fusedopt.cpu.VectorKernels.*;
import static io.fusedopt.internal.KernelFlags.*;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Muon;
import io.fusedopt.StateKind;
import io.fusedopt.cpu.VectorOperand;
import io.fusedopt.cpu.VectorUpdate;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdk.incubator.vector.FloatVector;

/**
 * {@link Muon}: kernels/muon.cu, a {@link MatrixKernel}. The formulas are {@link Muon}'s Javadoc
 * and docs/muon.md; the Newton-Schulz iteration is {@link io.fusedopt.internal.NewtonSchulz}.
 *
 * <p>The interpolations are PyTorch's vectorized CPU {@code torch.lerp} (ATen
 * {@code cpu/LerpKernel.cpp}): {@code fma(coeff, end - start, base)} with (coeff, base) =
 * (w, start) when |w| &lt; 0.5, else (w - 1, end); w - 1 is exact for w in [0.5, 1].
 */
public final class MuonAlgorithm extends Algorithm<Muon> {
    static final int H_MOMENTUM = H_FIRST_OWN, H_EPS = H_FIRST_OWN + 1, H_A = H_FIRST_OWN + 2, H_B = H_FIRST_OWN + 3,
            H_C = H_FIRST_OWN + 4, H_NS_STEPS = H_FIRST_OWN + 5;
    // struct MuonScalars, after MatrixKernel's five
    public static final int BUFFER_WEIGHT = MatrixKernel.FIRST_OWN_SCALAR, MOMENTUM = BUFFER_WEIGHT + 1,
            DECAY_FACTOR = BUFFER_WEIGHT + 2, LR = BUFFER_WEIGHT + 3, NEG_ADJUSTED_LR = BUFFER_WEIGHT + 4, COUNT = BUFFER_WEIGHT + 5;
    /** The learning rate is adjusted by Moonshot's rule (0.2 sqrt(max(rows, cols))) instead of the original one. */
    public static final int MATCH_RMS_ADAMW = ALGORITHM_0;
    /** The Newton-Schulz products run on cuBLAS with bf16 inputs ({@link Muon.Numerics#FAST}; CUDA only). */
    public static final int FAST_PRODUCTS = ALGORITHM_0 << 1;
    /** The plan's structure: the step count, plus this for fast numerics (both fix a prepared step's launches). */
    static final int FAST_STRUCTURE = 1 << 8;

    static final MatrixKernel KERNEL = new Kernel();

    public MuonAlgorithm() {
        super(Muon.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    /**
     * The weight decay is always decoupled, from the unadjusted learning rate; the structure is the
     * Newton-Schulz step count and the numerics.
     */
    @Override
    public UpdatePlan plan(Muon c) {
        boolean fast = c.numerics() == Muon.Numerics.FAST;
        int flags = (c.nesterov() ? NESTEROV : 0) | ((float) c.weightDecay() != 0f ? DECOUPLED_DECAY : 0)
                | (c.lrAdjustment() == Muon.LrAdjustment.MATCH_RMS_ADAMW ? MATCH_RMS_ADAMW : 0) | (fast ? FAST_PRODUCTS : 0);
        return new UpdatePlan(KERNEL, new StateKind[] {StateKind.MOMENTUM_BUFFER, null}, flags,
                c.nsSteps() | (fast ? FAST_STRUCTURE : 0));
    }

    @Override
    public String describeStructure(int structure) {
        return (structure & (FAST_STRUCTURE - 1)) + " Newton-Schulz steps in "
                + ((structure & FAST_STRUCTURE) != 0 ? Muon.Numerics.FAST : Muon.Numerics.EXACT) + " numerics";
    }

    /** Fast mode needs cuBLAS, which only the CUDA engine may have. */
    @Override
    protected String unavailableReason(Muon c, Engine engine) {
        return c.numerics() == Muon.Numerics.FAST ? engine.cublasUnavailableReason() : null;
    }

    /** The numerics are the optimizer's choice, not the checkpoint's: the group keeps its own. */
    @Override
    protected Muon resumedConfig(Muon saved, Muon current) {
        return saved.numerics() == current.numerics() ? saved : saved.toBuilder().optNumerics(current.numerics()).build();
    }

    @Override
    protected void ownHyperParameters(Muon c, float[] h) {
        h[H_MOMENTUM] = (float) c.momentum();
        h[H_EPS] = (float) c.eps();
        h[H_A] = (float) c.a();
        h[H_B] = (float) c.b();
        h[H_C] = (float) c.c();
        h[H_NS_STEPS] = c.nsSteps();
    }

    @Override
    protected double weightDecay(Muon c) {
        return c.weightDecay();
    }

    /** Muon orthogonalizes matrices: a parameter must be registered with a shape of two dimensions. */
    @Override
    public boolean takesMatrices() {
        return true;
    }

    @Override
    public void requireSupportedShape(String name, long[] shape) {
        if (shape.length != 2) {
            throw new IllegalArgumentException("param '" + name + "' has shape " + Arrays.toString(shape) + ", but Muon updates"
                    + " 2-D parameters only (torch.optim.Muon's rule): register a weight matrix with its shape, add(name, param,"
                    + " grad, rows, cols), and put embeddings, biases and norms in a group of another algorithm (AdamW)");
        }
    }

    @Override
    public Map<String, Muon> variants() {
        Map<String, Muon> v = new LinkedHashMap<>();
        v.put("muon", Muon.builder().optLearningRate(0.02).build());
        v.put("muon-plain-rms-adamw", Muon.builder().optLearningRate(0.01).optNesterov(false).optWeightDecay(0)
                .optLrAdjustment(Muon.LrAdjustment.MATCH_RMS_ADAMW).optNsSteps(3).build());
        return v;
    }

    /**
     * None: the elementwise benchmarks' one-dimensional tensors do not fit Muon; its cost is the
     * Newton-Schulz products of matrices, which NewtonSchulzBenchmark measures on transformer shapes.
     */
    @Override
    public Map<String, Muon> benchmarkConfigs() {
        return Map.of();
    }

    /** Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024). */
    @Override
    public int publicationYear() {
        return 2024;
    }

    /** PyTorch's lerp (see the class comment). */
    static float lerp(float start, float end, float weight) {
        boolean small = Math.abs(weight) < 0.5f;
        return Math.fma(small ? weight : weight - 1f, end - start, small ? start : end);
    }

    /** The factor of the learning rate for a {@code rows x cols} parameter, in double (PyTorch's {@code _adjust_lr}). */
    public static double lrRatio(boolean matchRmsAdamW, long rows, long cols) {
        return matchRmsAdamW ? 0.2 * Math.sqrt(Math.max(rows, cols)) : Math.sqrt(Math.max(1.0, (double) rows / cols));
    }

    private static final class Kernel extends MatrixKernel {
        Kernel() {
            super("MUON", "muon", "fusedopt_muon", 2, COUNT);
        }

        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            double momentum = hyper[h + H_MOMENTUM];
            out[o + NS_A] = hyper[h + H_A];
            out[o + NS_B] = hyper[h + H_B];
            out[o + NS_C] = hyper[h + H_C];
            out[o + NS_EPS] = hyper[h + H_EPS];
            out[o + NS_STEPS] = hyper[h + H_NS_STEPS];
            out[o + BUFFER_WEIGHT] = (float) (1.0 - momentum);
            out[o + MOMENTUM] = hyper[h + H_MOMENTUM];
            out[o + DECAY_FACTOR] = (float) (1.0 - (double) lrF * hyper[h + H_WEIGHT_DECAY]);
            out[o + LR] = lrF;
            out[o + NEG_ADJUSTED_LR] = -lrF;
        }

        @Override
        public void tensorScalars(long rows, long cols, float[] s, int flags) {
            s[NEG_ADJUSTED_LR] = (float) -((double) s[LR] * lrRatio(has(flags, MATCH_RMS_ADAMW), rows, cols));
        }

        @Override
        public int iterations(float[] hyper, int h) {
            return (int) hyper[h + H_NS_STEPS];
        }

        @Override
        public boolean fastProducts(int flags) {
            return has(flags, FAST_PRODUCTS);
        }

        /** U = nesterov ? lerp(g, B', mu) : B' with B' = lerp(B, g, 1 - mu). Slot 0: momentum_buffer. */
        @Override
        public void matrixInput(FloatBuffer[] o, int first, int from, int to, float[] s, int flags, float[] out) {
            FloatBuffer grad = o[first + 1], buffer = o[first + 2];
            boolean nesterov = has(flags, NESTEROV);
            for (int i = from; i < to; i++) {
                float g = grad.get(i);
                float b = lerp(buffer.get(i), g, s[BUFFER_WEIGHT]);
                out[i - from] = nesterov ? lerp(g, b, s[MOMENTUM]) : b;
            }
        }

        /** B = lerp(B, g, 1 - mu); p = fma(-lr', O, p (1 - lr wd)). Slots: momentum_buffer, O. */
        @Override
        public void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
            FloatBuffer param = o[first], grad = o[first + 1], buffer = o[first + 2], orthogonal = o[first + 3];
            boolean decoupled = has(flags, DECOUPLED_DECAY);
            for (int i = from; i < to; i++) {
                buffer.put(i, lerp(buffer.get(i), grad.get(i), s[BUFFER_WEIGHT]));
                float p = param.get(i);
                if (decoupled) p = p * s[DECAY_FACTOR];
                param.put(i, Math.fma(s[NEG_ADJUSTED_LR], orthogonal.get(i), p));
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
            VectorOperand param = o[0], grad = o[1], buffer = o[2], orthogonal = o[3];
            boolean decoupled = has(flags, DECOUPLED_DECAY);
            float w = s[BUFFER_WEIGHT];
            boolean small = Math.abs(w) < 0.5f;
            FloatVector coeff = broadcast(small ? w : w - 1f);
            FloatVector decayFactor = broadcast(s[DECAY_FACTOR]), negLr = broadcast(s[NEG_ADJUSTED_LR]);
            for (int i = from; i < to; i += SPECIES.length()) {
                FloatVector b = load(buffer, i), g = load(grad, i);
                store(coeff.fma(g.sub(b), small ? b : g), buffer, i);
                FloatVector p = load(param, i);
                if (decoupled) p = p.mul(decayFactor);
                store(negLr.fma(load(orthogonal, i), p), param, i);
            }
        }
    }
}
