package io.fusedopt.cuda;

/**
 * Whether the optional cuBLAS features can run here, decided once. JCublas 12.6's natives link
 * against {@code libcublas.so.12} (with versioned symbols), which CUDA 13 hosts do not have: there
 * cuBLAS features are off and everything else works. The only cuBLAS feature is
 * {@link CublasSgdBaseline}, an unfused baseline for the benchmarks.
 */
public final class CublasSupport {
    private CublasSupport() {}

    /** {@code reason} says why cuBLAS is off, or what it runs on. */
    public record Status(boolean available, String reason) {}

    private static final class Holder {
        static final Status STATUS = probe();
    }

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
            return new Status(true, "JCublas2 loaded (libcublas.so.12)");
        } catch (ClassNotFoundException e) {
            return new Status(false, "cuBLAS features are off: org.jcuda:jcublas is not on the classpath (it is an optional dependency)");
        } catch (LinkageError e) {
            return new Status(false, "cuBLAS features are off: JCublas2's native library needs libcuda.so.1 and libcublas.so.12"
                    + " (the CUDA 12 cuBLAS; CUDA 13 hosts ship only libcublas.so.13, which cannot stand in): "
                    + CudaProbe.linkerDiagnosis(e));
        }
    }
}
