package io.fusedopt;

/** Where a {@link DeviceOptimizer} runs its updates. */
public enum Backend {
    /**
     * The pure-Java reference implementation on host memory: one thread, one plain loop per
     * kernel, heap arrays (up to 2^31 - 9 elements per tensor). Always available; the oracle that
     * every other backend equals bit for bit.
     */
    CPU,
    /**
     * The fast CPU backend, bit-identical to {@link #CPU}: tensors of any length (in Java-array blocks), every
     * core (or {@code optCpuThreads}), SIMD through the incubating Vector API when the JVM runs
     * with {@code --add-modules jdk.incubator.vector} (JDK 17 and later), else the reference loops on
     * every core. Always available.
     */
    CPU_FAST,
    /**
     * CUDA kernels on device memory through JCuda's driver API. Creating an optimizer for this
     * backend fails with {@link BackendUnavailableException} when no usable GPU and driver exist.
     */
    CUDA,
    /** {@link #CUDA} where a usable GPU and driver exist, else {@link #CPU_FAST}; one log line says which and why. */
    AUTO
}
