package io.fusedopt.internal;

import java.nio.FloatBuffer;

/**
 * An update kernel whose step orthogonalizes each tensor as a matrix (Muon). A step runs, after the
 * finalize kernel and tensor by tensor, on every backend in this order:
 * <ol>
 *   <li>the matrix input U ({@link #matrixInput}): per element, from the param, the prepared
 *       gradient and the states, with the update's own float32 operations; nothing is written;</li>
 *   <li>its sum of squares in double, in the order of the layer-wise kernels' norms
 *       ({@link TensorNorms#sumOfSquares}: per chunk in the gradient statistics' lane order, then the
 *       chunks' sum in the finalize order);</li>
 *   <li>the Newton-Schulz iteration of U ({@link NewtonSchulz}) with the coefficients, eps and
 *       number of steps in the scalars at {@link #NS_A} to {@link #NS_STEPS}, giving O in the param's
 *       layout;</li>
 *   <li>the update pass ({@link #reference}, {@link #vectorUpdate}): an elementwise kernel whose last
 *       slot ({@link #orthogonalSlot}) holds O, a float32 workspace of the tensor's length that is
 *       not a state (no checkpoint holds it), after {@link #tensorScalars} added the scalars that
 *       depend on the tensor's shape.</li>
 * </ol>
 * On the device these are the entry points {@code kernels/FAMILY.cu} declares with
 * {@code FO_MATRIX_KERNELS} (fusedopt_matrix.cuh).
 */
public abstract class MatrixKernel extends UpdateKernel {
    /** Its launches are its own ({@code FO_MATRIX_KERNELS}): no entry point for 16-bit operands only. */
    @Override
    public final boolean hasNarrowEntryPoint() {
        return false;
    }

    /** The scalars every matrix kernel's scalar struct starts with: the Newton-Schulz coefficients, eps, and the step count (a float holding an integer). */
    public static final int NS_A = 0, NS_B = 1, NS_C = 2, NS_EPS = 3, NS_STEPS = 4;
    /** The first scalar a matrix kernel lays out for itself. */
    public static final int FIRST_OWN_SCALAR = 5;

    /**
     * @param stateSlots the state slots, the last of which is the workspace O ({@link #orthogonalSlot})
     * @see UpdateKernel#UpdateKernel(String, String, String, int, int)
     */
    protected MatrixKernel(String name, String family, String entryPoint, int stateSlots, int scalarCount) {
        super(name, family, entryPoint, stateSlots, scalarCount);
    }

    /** The slot of the update pass that holds the orthogonalized matrix O (float32, the param's layout). */
    public final int orthogonalSlot() {
        return stateSlots() - 1;
    }

    /** The input pass's entry point (any storage formats): {@code NAME_input}. */
    public String inputEntryPoint() {
        return entryPoint() + "_input";
    }

    /** The normalization's entry point: {@code NAME_normalize}. */
    public String normalizeEntryPoint() {
        return entryPoint() + "_normalize";
    }

    /** The entry point of the Newton-Schulz products: {@code NAME_product}. */
    public String productEntryPoint() {
        return entryPoint() + "_product";
    }

    /**
     * The matrix input of elements [from, to) of one tensor: with the operands {param, grad, slots}
     * at {@code o[first]} onwards (the gradient already prepared: unscaled and clipped) and the
     * scalars as {@link #reference} takes them, writes into {@code out[i - from]} the element of the
     * matrix the step orthogonalizes, computed with the update's own float32 operations. Writes no
     * operand.
     */
    public abstract void matrixInput(FloatBuffer[] o, int first, int from, int to, float[] s, int flags, float[] out);

    /**
     * Completes the step's scalars {@code s} (from {@link #scalars}) with those of a tensor of
     * {@code rows x cols}, computed in double and rounded once (the device's {@code Scalars::matrix}).
     * Reads only the slots {@link #scalars} wrote, so it may be called again for another tensor.
     */
    public abstract void tensorScalars(long rows, long cols, float[] s, int flags);

    /** The number of Newton-Schulz steps of the group whose hyper-parameters start at {@code hyper[h]}: the prepared launches depend on it. */
    public abstract int iterations(float[] hyper, int h);

    /**
     * Whether a group with these flags runs its Newton-Schulz products on cuBLAS with bf16 inputs
     * (Muon's fast mode; the CUDA backend only, which launches {@link #fastEntryPoint} around the
     * products): the prepared launches depend on it. False by default.
     */
    public boolean fastProducts(int flags) {
        return false;
    }

    /** The elementwise passes around the cuBLAS products of fast mode: {@code NAME_fast}. */
    public String fastEntryPoint() {
        return entryPoint() + "_fast";
    }
}
