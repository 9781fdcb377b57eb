package io.fusedopt.cuda;

/**
 * Whether NCCL can run here, decided once: fusedopt's NCCL binding (NCCL 2's C API through JNA, the
 * groundwork of sharded optimizer state across GPUs, docs/sharding.md) needs CUDA,
 * {@code net.java.dev.jna:jna} on the classpath (an optional dependency) and {@code libnccl.so.2}
 * on the library path (pip's {@code nvidia-nccl-cu12} or {@code -cu13}, or a system NCCL; Linux
 * only). On the CUDA emulator, {@code libnccl.so.2} is its test double.
 */
public final class NcclSupport {
    private NcclSupport() {}

    /** {@code reason} says, in one sentence, why NCCL is off, or which NCCL loaded. */
    public record Status(boolean available, String reason) {}

    /** The decision, made on the first call. */
    public static Status status() {
        return Nccl.status();
    }
}
