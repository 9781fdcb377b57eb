package io.fusedopt.internal;

import java.nio.FloatBuffer;

/**
 * An update kernel whose step depends on per-tensor norms (LAMB, LARS: the trust ratio of a
 * layer). A step runs it in three passes over the same segment table, on every backend in the
 * same order:
 * <ol>
 *   <li>the norm pass: per chunk, the sums of squares, in double, of two per-element values the
 *       kernel names ({@link #normInputs}: LAMB's parameter and update, LARS's parameter and
 *       gradient), in the lane order of the gradient statistics ({@link TensorNorms}); it writes
 *       no tensor;</li>
 *   <li>per tensor, the sums of its chunks' partial sums in a fixed order ({@link TensorNorms});</li>
 *   <li>the update, whose per-step scalars {@link #tensorScalars} completes with the tensor's own
 *       factor from those two sums.</li>
 * </ol>
 * On the device these are {@code NAME_norms}, {@code fusedopt_tensor_norms} (kernels/control.cu)
 * and {@code NAME}, declared together by {@code FO_LAYERWISE_KERNELS} (kernels/fusedopt_common.cuh);
 * they run after the finalize kernel and inside a captured step, with no host synchronization.
 * The gradient is read in both passes and never written.
 */
public abstract class LayerwiseKernel extends UpdateKernel {
    /** Its launches are its own ({@code FO_LAYERWISE_KERNELS}): no entry point for 16-bit operands only. */
    @Override
    public final boolean hasNarrowEntryPoint() {
        return false;
    }

    private final boolean normsReadState;

    /**
     * @param normsReadState whether the norm pass reads the state slots (LAMB's update needs the
     *                       moments; LARS's norms are the parameter's and the gradient's)
     * @see UpdateKernel#UpdateKernel(String, String, String, int, int)
     */
    protected LayerwiseKernel(String name, String family, String entryPoint, int stateSlots, int scalarCount,
                              boolean normsReadState) {
        super(name, family, entryPoint, stateSlots, scalarCount);
        this.normsReadState = normsReadState;
    }

    /** The norm pass's float32 entry point: {@code NAME_norms}. */
    public String normsEntryPoint() {
        return entryPoint() + "_norms";
    }

    /** The norm pass's entry point for any storage formats: {@code NAME_norms_mixed}. */
    public String normsMixedEntryPoint() {
        return normsEntryPoint() + "_mixed";
    }

    /** Whether the norm pass reads the state slots (besides the param and the gradient, which it always reads). */
    public boolean normsReadState() {
        return normsReadState;
    }

    /**
     * The norm pass's per-element values of elements [from, to) of one tensor: with the operands
     * and scalars as {@link #reference} takes them, writes into {@code a[i - from]} and
     * {@code b[i - from]} the two values whose squares add up to the tensor's two sums, computed
     * with the update's own float32 operations (a value the update computes has the bits the
     * update will give it). Writes no operand.
     */
    public abstract void normInputs(FloatBuffer[] o, int first, int from, int to, float[] s, int flags, float[] a, float[] b);

    /**
     * Completes the step's scalars {@code s} (from {@link #scalars}) with the per-tensor values of
     * a tensor whose two sums of squares are {@code sumA} and {@code sumB}, in double, rounded
     * once (the device's {@code Scalars::layer}). Reads only the slots {@link #scalars} wrote,
     * so it may be called again on the same array for another tensor.
     */
    public abstract void tensorScalars(double sumA, double sumB, float[] s, int flags);
}
