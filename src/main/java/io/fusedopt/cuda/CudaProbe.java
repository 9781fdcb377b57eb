package io.fusedopt.cuda;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Whether CUDA can be used in this process, decided once and cached. Every failure becomes a
 * sentence a user can act on: no JCuda on the classpath, no NVIDIA driver (libcuda.so.1), no
 * device, a driver too old for the kernels this build carries, or a device 0 whose primary context
 * cannot be created or into which the kernels do not load.
 */
public final class CudaProbe {
    private CudaProbe() {}

    /** How the fusedopt CUDA emulator (a test double of libcuda.so.1 that runs kernels on the CPU) names its devices. */
    public static final String EMULATOR_NAME_PREFIX = "fusedopt CUDA emulator";

    /** Why benchmarks refuse to run on the emulator. */
    public static final String EMULATOR_BENCHMARK_REFUSAL = "refusing to benchmark on the CUDA emulator: it proves logic, not speed";

    /**
     * The outcome of the probe. {@code reason} says why CUDA is unusable, or describes it when
     * usable; {@code deviceName} is device 0's name ("" when the probe did not get that far).
     */
    public record Result(boolean available, String reason, int driverCudaVersion, int deviceCount, String deviceName) {
        static Result unavailable(String reason) {
            return new Result(false, reason, 0, 0, "");
        }

        /**
         * Whether the driver is the fusedopt CUDA emulator rather than a GPU: results on it prove
         * the logic (driver rules, kernel arithmetic), timings on it say nothing about a GPU.
         */
        public boolean emulator() {
            return deviceName.startsWith(EMULATOR_NAME_PREFIX);
        }

        /** What runs the CUDA work, for every report that shows CUDA results. */
        public String kind() {
            return emulator() ? "CUDA emulator (proves logic, not speed)" : "real GPU";
        }
    }

    /**
     * Throws {@link IllegalStateException} with {@link #EMULATOR_BENCHMARK_REFUSAL} when CUDA runs
     * on the emulator: for every benchmark that times CUDA, so that no emulator figure is published.
     */
    public static void refuseBenchmarkOnEmulator() {
        if (result().emulator()) throw new IllegalStateException(EMULATOR_BENCHMARK_REFUSAL);
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
                    + " driver (libcuda.so.1) is not installed or not on the library path: " + linkerDiagnosis(e));
        }
        try {
            return DriverProbe.run(KernelModules.requiredDriverVersion());
        } catch (LinkageError | RuntimeException e) {
            return Result.unavailable("probing the CUDA driver failed: " + rootMessage(e));
        }
    }

    private static final Pattern MISSING_SHARED_OBJECT =
            Pattern.compile("([\\w.+-]+\\.so[.\\d]*): cannot open shared object file: ([A-Za-z ]*)");

    /**
     * JCuda's message carries whole nested stack traces; keep the dynamic loader's own sentence
     * (for example "libcuda.so.1: cannot open shared object file: No such file or directory").
     */
    static String linkerDiagnosis(Throwable e) {
        String all = String.valueOf(e.getMessage());
        Matcher m = MISSING_SHARED_OBJECT.matcher(all);
        if (m.find()) return m.group(1) + ": cannot open shared object file: " + m.group(2).trim();
        String first = all.lines().findFirst().orElse(e.getClass().getName());
        return first.length() > 300 ? first.substring(0, 300) + "..." : first;
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) t = t.getCause();
        String message = t.getMessage() == null ? t.getClass().getName() : t.getMessage();
        return message.replaceAll("\\s+", " ").trim();
    }
}
