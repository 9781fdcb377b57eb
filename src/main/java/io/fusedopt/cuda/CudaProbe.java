package io.fusedopt.cuda;

/**
 * Whether CUDA can be used in this process, decided once and cached. Every failure becomes a
 * sentence a user can act on: no JCuda on the classpath, no NVIDIA driver (libcuda.so.1), no
 * device, or a driver too old for the kernels this build carries.
 */
public final class CudaProbe {
    private CudaProbe() {}

    /** The outcome of the probe. {@code reason} says why CUDA is unusable, or describes it when usable. */
    public record Result(boolean available, String reason, int driverCudaVersion, int deviceCount) {
        static Result unavailable(String reason) {
            return new Result(false, reason, 0, 0);
        }
    }

    private static final class Holder {
        static final Result RESULT = run();
    }

    /** The cached probe result; the first call runs the probe. Never throws. */
    public static Result result() {
        return Holder.RESULT;
    }

    private static Result run() {
        try {
            Class.forName("jcuda.driver.JCudaDriver", true, CudaProbe.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            return Result.unavailable("JCuda (org.jcuda:jcuda) is not on the classpath");
        } catch (LinkageError e) {
            // UnsatisfiedLinkError on the first attempt, NoClassDefFoundError on later ones.
            return Result.unavailable("the JCuda driver library could not be loaded, usually because the NVIDIA"
                    + " driver (libcuda.so.1) is not installed or not on the library path: " + rootMessage(e));
        }
        try {
            return DriverProbe.run(KernelModules.requiredDriverVersion());
        } catch (LinkageError | RuntimeException e) {
            return Result.unavailable("probing the CUDA driver failed: " + rootMessage(e));
        }
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) t = t.getCause();
        String message = t.getMessage() == null ? t.getClass().getName() : t.getMessage();
        return message.replaceAll("\\s+", " ").trim();
    }
}
