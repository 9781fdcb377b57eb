package io.fusedopt;

/** Where a {@link DeviceOptimizer} runs its updates. */
public enum Backend {
    /** The pure-Java reference implementation on host memory. Always available. */
    CPU,
    /**
     * CUDA kernels on device memory through JCuda's driver API. Creating an optimizer for this
     * backend fails with {@link BackendUnavailableException} when no usable GPU and driver exist.
     */
    CUDA,
    /** {@link #CUDA} where a usable GPU and driver exist, else {@link #CPU}; one log line says which and why. */
    AUTO
}
