package io.fusedopt.internal;

/** Bit flags passed to every kernel; mirrors the FO_* macros of kernels/fusedopt_common.cuh. */
public final class KernelFlags {
    private KernelFlags() {}

    public static final int MAXIMIZE = 1;
    public static final int L2_DECAY = 1 << 1;
    public static final int DECOUPLED_DECAY = 1 << 2;
    public static final int NESTEROV = 1 << 3;
    public static final int FIRST_STEP = 1 << 4;
    public static final int AMSGRAD = 1 << 5;
    public static final int CENTERED = 1 << 6;
    public static final int MOMENTUM = 1 << 7;
    /** Set per step by the finalize computation: the gradient is multiplied by 1/loss scale. */
    public static final int UNSCALE = 1 << 8;
    /** Set per step by the finalize computation: the gradient is multiplied by the clip factor. */
    public static final int CLIP = 1 << 9;
    /** Adam's step-size form; read only where the per-step scalars are computed. */
    public static final int STEP_SIZE_FORM = 1 << 10;
    /** FO_STOCHASTIC_ROUNDING: a 16-bit param without a master is rounded stochastically (an optimizer option). */
    public static final int STOCHASTIC_ROUNDING = 1 << 11;

    /**
     * The first of eight bits an algorithm may use for its own step-independent options (set by its
     * plan, read by its kernels only): ALGORITHM_0 << k for k in 0..7. Two algorithms may give the
     * same bit different meanings.
     */
    public static final int ALGORITHM_0 = 1 << 16;

    public static boolean has(int flags, int flag) {
        return (flags & flag) != 0;
    }
}
