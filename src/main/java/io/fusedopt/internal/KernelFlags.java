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

    public static boolean has(int flags, int flag) {
        return (flags & flag) != 0;
    }
}
