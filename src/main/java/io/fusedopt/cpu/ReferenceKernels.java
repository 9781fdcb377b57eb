package io.fusedopt.cpu;

import static io.fusedopt.internal.KernelFlags.L2_DECAY;
import static io.fusedopt.internal.KernelFlags.MAXIMIZE;
import static io.fusedopt.internal.KernelFlags.has;

import io.fusedopt.internal.UpdateKernel;
import java.nio.FloatBuffer;

/**
 * The reference implementation's entry point and shared helpers: each algorithm's reference loop
 * ({@link UpdateKernel#reference}, in io.fusedopt.internal.algorithms) is one plain loop per kernel
 * of kernels/*.cu, performing the same float32 operations in the same order. {@link Math#fma(float, float, float)} stands where the
 * kernels write __fmaf_rn; every other operation is a single, correctly rounded Java float
 * operation, as the kernels' __fmul_rn/__fadd_rn/__fdiv_rn/__fsqrt_rn are. Each loop updates the
 * elements [from, to) of one tensor (one chunk of the segment table). Clarity over speed: a fast
 * CPU path is separate work and is tested against this class.
 */
public final class ReferenceKernels {
    private ReferenceKernels() {}

    /** The gradient every family uses: negated for maximize, then plus weight decay (L2). */
    public static float effectiveGrad(float g, float p, float weightDecay, int flags) {
        if (has(flags, MAXIMIZE)) g = -g;
        if (has(flags, L2_DECAY)) g = Math.fma(weightDecay, p, g);
        return g;
    }

    /** max(current, candidate) that propagates NaN from either side (kernels: fo_max_nan). */
    public static float maxPropagatingNaN(float current, float candidate) {
        return (candidate > current || Float.isNaN(candidate)) ? candidate : current;
    }

    /**
     * Runs {@code kernel} over [from, to) of the operands {param, grad, slot0, slot1, slot2}
     * (null where the variant keeps no such state).
     */
    public static void run(UpdateKernel kernel, FloatBuffer[] o, int from, int to, float[] s, int flags) {
        run(kernel, o, 0, from, to, s, flags);
    }

    /**
     * {@link #run(UpdateKernel, FloatBuffer[], int, int, float[], int)} with the operands at
     * {@code o[first]} to {@code o[first + 4]}: a step program keeps every chunk's operands in one
     * array and passes them where they lie (copying references costs a write barrier each).
     */
    public static void run(UpdateKernel kernel, FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
        kernel.reference(o, first, from, to, s, flags);
    }
}
