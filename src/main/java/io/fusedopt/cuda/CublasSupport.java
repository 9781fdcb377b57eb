package io.fusedopt.cuda;

/**
 * Whether the optional cuBLAS features can run here, decided once: {@link CublasGemm} (the
 * products of Muon's fast mode) and {@link CublasSgdBaseline}, an unfused baseline for the
 * benchmarks.
 *
 * <p>cuBLAS comes through JCuda's {@code org.jcuda:jcublas} 12.6.0 (an optional dependency; its
 * natives, {@code jcublas-natives}, exist for Linux and Windows x86-64). The natives do not bundle
 * cuBLAS: they link against {@code libcublas.so.12}, the CUDA 12 cuBLAS, with versioned symbols,
 * so the dynamic linker must find that library. A CUDA 12 installation has it; a CUDA 13 host has
 * only {@code libcublas.so.13}, which cannot stand in. There cuBLAS features are off, with one
 * sentence saying why, and everything else works; to turn them on, put a CUDA 12
 * {@code libcublas.so.12} (with the {@code libcublasLt.so.12} it needs) on {@code LD_LIBRARY_PATH}:
 * PyTorch's CUDA 12 wheels depend on {@code nvidia-cublas-cu12}, which carries both, and the CUDA 13
 * driver runs CUDA 12 libraries (backward compatibility). On the CUDA emulator (docs/cuda.md),
 * {@code libcublas.so.12} is its test double, which computes on the CPU.
 */
public final class CublasSupport {
    private CublasSupport() {}

    /** {@code reason} says why cuBLAS is off, or what it runs on. */
    public record Status(boolean available, String reason) {}

    private static final class Holder {
        static final Status STATUS = probe();
    }

    /** The decision, made on the first call: whether JCublas2 and the cuBLAS it links against load. */
    public static Status status() {
        return Holder.STATUS;
    }

    private static Status probe() {
        CudaProbe.Result cuda = CudaProbe.result();
        if (!cuda.available()) {
            return new Status(false, "cuBLAS features are off because CUDA is unavailable: " + cuda.reason());
        }
        try {
            Class.forName("jcuda.jcublas.JCublas2", true, CublasSupport.class.getClassLoader());
            return new Status(true, cuda.emulator()
                    ? "JCublas2 loaded (libcublas.so.12: the CUDA emulator's cuBLAS double, which computes on the CPU)"
                    : "JCublas2 loaded (libcublas.so.12)");
        } catch (ClassNotFoundException e) {
            return new Status(false, "cuBLAS features are off: org.jcuda:jcublas is not on the classpath (it is an optional dependency)");
        } catch (LinkageError e) {
            return new Status(false, "cuBLAS features are off: JCublas2's native library needs libcuda.so.1 and libcublas.so.12"
                    + " (the CUDA 12 cuBLAS; CUDA 13 hosts ship only libcublas.so.13, which cannot stand in): "
                    + CudaProbe.linkerDiagnosis(e));
        }
    }
}
