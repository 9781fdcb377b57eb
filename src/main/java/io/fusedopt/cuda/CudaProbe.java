package io.fusedopt.cuda;

import java.io.File;
import java.io.IOException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jcuda.JCudaVersion;
import jcuda.LibUtils;

/**
 * Whether CUDA can be used in this process, decided once and cached. Every failure becomes a
 * sentence a user can act on: no JCuda on the classpath, no JCuda native library for this OS and
 * architecture, no NVIDIA driver (libcuda.so.1, nvcuda.dll), no device, a driver too old for the
 * kernels this build carries, or a device 0 whose primary context cannot be created or into which
 * the kernels do not load.
 *
 * <p>JCuda extracts its native library into the temporary folder and loads it as soon as
 * {@code JCudaDriver}'s class initializes. So the probe first decides, from file names alone, the two
 * things that make that pointless: whether a JCuda native library for this platform is on the
 * classpath (or the {@code java.library.path}), and whether the NVIDIA driver library exists where
 * the dynamic loader would look. Only then does it load JCuda. Nothing calls the probe unless CUDA or
 * AUTO is asked for: the CPU backends never touch JCuda.
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
            // Loads and initializes JCuda's version and naming classes only: neither loads a native library.
            Class.forName("jcuda.JCudaVersion", true, CudaProbe.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            return Result.unavailable("JCuda (org.jcuda:jcuda) is not on the classpath");
        }
        String notLoadable = beforeLoadingJCuda();
        if (notLoadable != null) return Result.unavailable(notLoadable);
        try {
            // Extracts JCuda's native library to the temporary folder and loads it (and so libcuda.so.1).
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

    /**
     * Why loading JCuda is pointless here (no natives for this platform, no NVIDIA driver), or null
     * to load it. Decided from file names only, for this JVM's os.name, os.arch, java.library.path
     * and environment; a check that fails unexpectedly (an odd path in LD_LIBRARY_PATH, a security
     * manager) leaves the decision to loading JCuda.
     */
    private static String beforeLoadingJCuda() {
        try {
            String missing = nativesMissing(System.getProperty("os.name"), System.getProperty("os.arch"), JCudaVersion.get(),
                    driverLibraryFileName(), CudaProbe.class.getClassLoader(), System.getProperty("java.library.path", ""));
            return missing != null ? missing : driverMissing(LibUtils.calculateOS(), System.getenv(), Path.of("/"));
        } catch (RuntimeException e) {
            return null;
        }
    }

    /**
     * The platforms Maven Central has JCuda 12.6.0's natives for (org.jcuda:jcuda-natives
     * classifiers), which pom.xml adds back in its OS-activated profiles: there a missing natives
     * jar is a classpath problem, elsewhere it is the platform.
     */
    static final Set<String> PUBLISHED_NATIVES = Set.of("linux-x86_64", "windows-x86_64");

    /**
     * The file JCuda's {@code JCudaDriver} loads, named as JCuda names it for this JVM's os.name and
     * os.arch (for example {@code libJCudaDriver-12.6.0-linux-x86_64.so}, {@code
     * JCudaDriver-12.6.0-windows-x86_64.dll}): JCuda's own {@code LibUtils}, whose class loads
     * nothing native, so that the name cannot drift from the one JCuda looks for.
     */
    static String driverLibraryFileName() {
        return LibUtils.createLibraryFileName(LibUtils.createPlatformLibraryName("JCudaDriver-" + JCudaVersion.get()));
    }

    /**
     * Why JCuda's driver library cannot load on this platform, or null when JCuda will find it.
     * JCuda loads {@code fileName} from the {@code java.library.path} first, else as the resource
     * {@code /lib/fileName} of its natives jar (which it extracts to the temporary folder); this
     * looks for both without reading or extracting anything.
     *
     * @param fileName {@link #driverLibraryFileName()}: its platform part ("linux-x86_64") is what
     *     the natives jar's classifier would be
     */
    static String nativesMissing(String osName, String osArch, String jcudaVersion, String fileName, ClassLoader loader,
            String javaLibraryPath) {
        for (String folder : javaLibraryPath.split(Pattern.quote(File.pathSeparator))) {
            if (!folder.isEmpty() && Files.isRegularFile(Path.of(folder).resolve(fileName))) return null;
        }
        URL resource = loader == null ? ClassLoader.getSystemResource("lib/" + fileName) : loader.getResource("lib/" + fileName);
        if (resource != null) return null;
        String platform = platformOf(fileName, jcudaVersion);
        if (PUBLISHED_NATIVES.contains(platform)) {
            return "JCuda's native library for " + osName + " " + osArch + " (org.jcuda:jcuda-natives:" + jcudaVersion
                    + ", classifier " + platform + ") is not on the classpath (fusedopt runs on the CPU backends here)";
        }
        return "JCuda " + jcudaVersion + " has no native library for " + osName + " " + osArch
                + " (fusedopt runs on the CPU backends here)";
    }

    /** "linux-x86_64" of "libJCudaDriver-12.6.0-linux-x86_64.so"; "" when the name has no such part. */
    static String platformOf(String fileName, String jcudaVersion) {
        String marker = "JCudaDriver-" + jcudaVersion + "-";
        int start = fileName.indexOf(marker);
        if (start < 0) return "";
        String rest = fileName.substring(start + marker.length());
        int dot = rest.lastIndexOf('.');
        return dot < 0 ? rest : rest.substring(0, dot);
    }

    /**
     * Where Linux distributions install libraries (the loader's defaults /lib and /usr/lib, the lib64
     * folders of Red Hat-like systems, Debian's multiarch folders), plus the folders where WSL and
     * NixOS put the NVIDIA driver. The dynamic loader finds these through its cache or LD_LIBRARY_PATH
     * (WSL and NixOS configure one of them); the probe also looks in them directly so that a driver
     * installed without running ldconfig is not taken for a missing one.
     */
    static final List<String> LINUX_LIBRARY_FOLDERS = List.of("lib", "usr/lib", "lib64", "usr/lib64",
            "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu",
            "usr/lib/wsl/lib", "run/opengl-driver/lib");

    /**
     * Why the NVIDIA driver library is missing, or null when it exists or this cannot be told without
     * loading it (an OS other than Linux and Windows). Looks where the dynamic loader looks, by file
     * name only: on Linux {@code libcuda.so.1} in LD_LIBRARY_PATH's folders, in {@code
     * /etc/ld.so.cache} and in the system library folders; on Windows {@code nvcuda.dll} in
     * System32 and on the PATH (where Windows looks for DLLs). In doubt it answers null, and loading
     * JCuda decides: a wrong "missing" would turn off a working GPU, a wrong "present" only costs the
     * extraction this check exists to avoid.
     *
     * @param root the file system root ("/"; a test passes a folder that plays it)
     */
    static String driverMissing(LibUtils.OSType os, Map<String, String> environment, Path root) {
        if (os == LibUtils.OSType.LINUX) {
            String library = "libcuda.so.1";
            List<Path> folders = new ArrayList<>();
            for (String folder : environment.getOrDefault("LD_LIBRARY_PATH", "").split(":")) {
                if (!folder.isEmpty()) folders.add(Path.of(folder));
            }
            for (String folder : LINUX_LIBRARY_FOLDERS) folders.add(root.resolve(folder));
            if (folders.stream().anyMatch(f -> Files.exists(f.resolve(library)))) return null;
            Boolean listed = listedInLoaderCache(root.resolve("etc/ld.so.cache"), library);
            if (listed == null || listed) return null;
            return "no NVIDIA driver is installed: " + library + " is not in LD_LIBRARY_PATH, /etc/ld.so.cache or the"
                    + " system library folders";
        }
        if (os == LibUtils.OSType.WINDOWS) {
            String library = "nvcuda.dll";
            List<Path> folders = new ArrayList<>();
            String windows = environment.getOrDefault("SystemRoot", environment.getOrDefault("windir", "C:\\Windows"));
            folders.add(Path.of(windows, "System32"));
            for (String folder : environment.getOrDefault("PATH", environment.getOrDefault("Path", "")).split(";")) {
                if (!folder.isBlank()) folders.add(Path.of(folder.strip()));
            }
            if (folders.stream().anyMatch(f -> Files.exists(f.resolve(library)))) return null;
            return "no NVIDIA driver is installed: " + library + " is not in " + folders.get(0) + " nor on the PATH";
        }
        return null;
    }

    /**
     * Whether ld.so's cache lists a library of this name: false when there is no cache (musl systems
     * have none), null when it exists but cannot be read (then only loading can tell). Its binary
     * format holds every library's name and path as NUL-terminated strings, so finding "name\0"
     * right after a '/' or a NUL is enough.
     */
    static Boolean listedInLoaderCache(Path cache, String library) {
        byte[] bytes;
        try {
            if (!Files.exists(cache)) return false;
            bytes = Files.readAllBytes(cache);
        } catch (IOException | SecurityException e) {
            return null;
        }
        byte[] name = (library + "\0").getBytes(StandardCharsets.US_ASCII);
        outer:
        for (int i = 0; i + name.length <= bytes.length; i++) {
            for (int j = 0; j < name.length; j++) {
                if (bytes[i + j] != name[j]) continue outer;
            }
            if (i == 0 || bytes[i - 1] == '/' || bytes[i - 1] == 0) return true;
        }
        return false;
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
