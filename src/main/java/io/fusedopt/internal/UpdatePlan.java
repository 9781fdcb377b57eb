package io.fusedopt.internal;

import io.fusedopt.OptimizerConfig;
import io.fusedopt.StateKind;
import io.fusedopt.Precision;
import java.util.Arrays;

/**
 * How one configuration runs: which kernel, which state tensor sits in each of its state slots
 * (null where the variant does not use the slot), the flags that do not change from step to
 * step, and the number the prepared launches depend on besides the kernel ({@code structure}:
 * Muon's Newton-Schulz steps; 0 for every elementwise kernel), which a group keeps like its states.
 */
public record UpdatePlan(UpdateKernel kernel, StateKind[] slots, int staticFlags, int structure) {

    /** The plan of an elementwise kernel (structure 0). */
    public UpdatePlan(UpdateKernel kernel, StateKind[] slots, int staticFlags) {
        this(kernel, slots, staticFlags, 0);
    }

    /** The plan of {@code config}, from its {@link Algorithm}. */
    public static UpdatePlan of(OptimizerConfig config) {
        return Algorithms.of(config).planOf(config);
    }

    /**
     * Bytes one element's update moves in float32, the floor of a memory-bound step: it reads the
     * param, the grad and every used state, and writes the param and every used state.
     */
    public int bytesPerElement() {
        return bytesPerElement(Precision.FP32, Precision.FP32, Precision.FP32, false);
    }

    /**
     * Bytes one element's update moves with these storage formats: reads of the param (or the
     * fp32 master), the grad and every used state; writes of the param, the master when there is
     * one, and every used state. A layer-wise kernel's norm pass reads the param (or master) and
     * the grad once more, and the states where it reads them ({@link LayerwiseKernel#normsReadState});
     * a factored kernel's tensor sums read them all once more (a vector's: its RMS(p) pass, its
     * RMS(u) pass reading the grad and the variance).
     */
    public int bytesPerElement(Precision param, Precision grad, Precision state,
                               boolean master) {
        int states = usedSlots();
        int read = (master ? Float.BYTES : param.bytes()) + grad.bytes() + states * state.bytes();
        if (kernel instanceof LayerwiseKernel layerwise) {
            read += (master ? Float.BYTES : param.bytes()) + grad.bytes() + (layerwise.normsReadState() ? states * state.bytes() : 0);
        } else if (kernel instanceof FactoredKernel) {
            read += (master ? Float.BYTES : param.bytes()) + grad.bytes() + states * state.bytes();
        }
        int written = param.bytes() + (master ? Float.BYTES : 0) + states * state.bytes();
        return read + written;
    }

    /**
     * Bytes one step over a tensor of {@code elements} moves when its states are 8-bit blockwise
     * ({@link io.fusedopt.StateQuantization#BLOCKWISE_8BIT}): as {@link #bytesPerElement(Precision,
     * Precision, Precision, boolean)} with each state element one code byte read and written
     * instead of a float, plus each state's float32 absmax per block of
     * {@link BlockwiseQuantization#BLOCK}, read and written (the last block may be partial).
     *
     * @throws IllegalStateException for a layer-wise kernel (none has 8-bit states)
     */
    public long quantizedBytesPerStep(long elements, Precision param, Precision grad, boolean master) {
        if (kernel instanceof LayerwiseKernel) throw new IllegalStateException(kernel + " has no 8-bit states");
        int states = usedSlots();
        long perElement = bytesPerElement(param, grad, Precision.FP32, master) - 2L * states * (Float.BYTES - 1);
        long blocks = (elements + BlockwiseQuantization.BLOCK - 1) / BlockwiseQuantization.BLOCK;
        return perElement * elements + 2L * states * Float.BYTES * blocks;
    }

    /** Same kernel, same state tensors in the same slots and same structure (hyper-parameters may differ). */
    public boolean sameLayout(UpdatePlan other) {
        return kernel == other.kernel && Arrays.equals(slots, other.slots) && structure == other.structure;
    }

    /**
     * The number of per-element state tensors this variant keeps for a one-dimensional parameter:
     * its used state slots, except for a factored kernel, whose slots name the states of every
     * rank and whose vector keeps one (its variance; a matrix keeps R + C factor values instead).
     */
    public int usedSlots() {
        if (kernel instanceof FactoredKernel) return 1;
        int states = 0;
        for (StateKind slot : slots) if (slot != null) states++;
        return states;
    }

    /** The state tensors a parameter of shape {@code shape} keeps under {@code config} ({@link Algorithm#stateKinds}). */
    public static java.util.List<StateKind> stateKinds(OptimizerConfig config, long[] shape) {
        return Algorithms.of(config).stateKindsOf(config, shape);
    }

    /** The shape of state {@code kind} of a parameter of shape {@code shape} under {@code config} ({@link Algorithm#stateShape}). */
    public static long[] stateShape(OptimizerConfig config, StateKind kind, long[] shape) {
        return Algorithms.of(config).stateShape(kind, shape);
    }

    /** The value a state tensor of this configuration starts at. */
    public static float initialValue(OptimizerConfig config, StateKind kind) {
        return Algorithms.of(config).initialValueOf(config, kind);
    }

    /** The flags every algorithm shares: maximize, and L2 weight decay when the coefficient is not 0 in float32. */
    public static int commonFlags(boolean maximize, double weightDecay) {
        return (maximize ? KernelFlags.MAXIMIZE : 0) | ((float) weightDecay != 0f ? KernelFlags.L2_DECAY : 0);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof UpdatePlan p && kernel == p.kernel && staticFlags == p.staticFlags
                && Arrays.equals(slots, p.slots) && structure == p.structure;
    }

    @Override
    public int hashCode() {
        return 31 * (31 * (31 * kernel.hashCode() + Arrays.hashCode(slots)) + staticFlags) + structure;
    }

    @Override
    public String toString() {
        return "UpdatePlan[" + kernel + ", slots=" + Arrays.toString(slots) + ", flags=" + staticFlags
                + (structure != 0 ? ", structure=" + structure : "") + "]";
    }
}
