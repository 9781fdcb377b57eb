package io.fusedopt.internal;

/**
 * One elementwise update kernel: its CUDA family (fatbin) and entry point (plus the
 * {@code _mixed} entry point for storage formats other than float32), its code in the kernels
 * (FO_KERNEL_*), how many state slots it takes after param and grad (a slot may be null when the
 * variant does not use it), and how many float scalars its scalar struct holds.
 */
public enum UpdateKernel {
    SGD("sgd", "fusedopt_sgd", 0, StepScalars.SGD_COUNT),
    MOMENTUM_BUFFER("sgd", "fusedopt_momentum_buffer", 1, StepScalars.MOMENTUM_COUNT),
    MOMENTUM_VELOCITY("sgd", "fusedopt_momentum_velocity", 1, StepScalars.MOMENTUM_COUNT),
    RMSPROP("rmsprop", "fusedopt_rmsprop", 3, StepScalars.RMSPROP_COUNT),
    ADAM("adam", "fusedopt_adam", 3, StepScalars.ADAM_COUNT),
    ADAGRAD("adagrad", "fusedopt_adagrad", 1, StepScalars.ADAGRAD_COUNT);

    private final String family;
    private final String entryPoint;
    private final int stateSlots;
    private final int scalarCount;

    UpdateKernel(String family, String entryPoint, int stateSlots, int scalarCount) {
        this.family = family;
        this.entryPoint = entryPoint;
        this.stateSlots = stateSlots;
        this.scalarCount = scalarCount;
    }

    public String family() { return family; }
    public String entryPoint() { return entryPoint; }
    /** The entry point that reads any storage format and master weights. */
    public String mixedEntryPoint() { return entryPoint + "_mixed"; }
    public int stateSlots() { return stateSlots; }
    public int scalarCount() { return scalarCount; }
    /** FO_KERNEL_* in kernels/fusedopt_common.cuh. */
    public int code() { return ordinal(); }
}
