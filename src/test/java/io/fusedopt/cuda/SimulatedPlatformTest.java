package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import jcuda.LibUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The probe on platforms JCuda has no natives for, and the CPU backends anywhere, in child JVMs
 * ({@link ProbeChild}) with simulated os.name and os.arch (what JCuda's LibUtils and the probe
 * read), a temporary folder of their own and a class-load log: AUTO runs on CPU_FAST and says why
 * in one sentence, CUDA requested is refused with that sentence, and nothing of JCuda's native
 * code is extracted or loaded ({@code jcuda.driver.JCudaDriver}, whose initialization extracts
 * libJCudaDriver into the temporary folder, is never even loaded).
 */
class SimulatedPlatformTest {
    @TempDir
    Path dir;

    /** What a child JVM printed, and what it left behind. */
    record Child(Map<String, String> output, String text, List<String> loadedClasses, List<Path> extracted) {
        String get(String key) {
            return output.get(key);
        }
    }

    Child run(Backend backend, Map<String, String> environment, String... jvmOptions) throws Exception {
        Path tmp = Files.createDirectories(dir.resolve("tmp-" + backend + "-" + System.nanoTime()));
        Path classLog = tmp.resolveSibling(tmp.getFileName() + ".classes");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Djava.io.tmpdir=" + tmp, "-Xlog:class+load=info:file=" + classLog));
        command.addAll(List.of(jvmOptions));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), ProbeChild.class.getName(), backend.name()));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        if (environment != null) {
            builder.environment().clear();
            builder.environment().putAll(environment);
        }
        Process process = builder.start();
        process.getOutputStream().close();
        byte[] bytes = process.getInputStream().readAllBytes();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "the child JVM did not finish");
        String text = new String(bytes, StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), String.join(" ", command) + "\n" + text);
        Map<String, String> output = new HashMap<>();
        text.lines().filter(l -> l.contains("=")).forEach(l -> output.put(l.substring(0, l.indexOf('=')), l.substring(l.indexOf('=') + 1)));
        List<String> classes = Files.readAllLines(classLog).stream()
                .map(l -> l.replaceAll("^.*\\[class,load\\] (\\S+).*$", "$1")).toList();
        List<Path> extracted;
        try (Stream<Path> files = Files.walk(tmp)) {
            extracted = files.filter(f -> f.getFileName().toString().contains("JCuda")).toList();
        }
        return new Child(output, text, classes, extracted);
    }

    enum Backend { AUTO, CUDA, CPU, CPU_FAST }

    static final String MAC = "-Dos.name=Mac OS X", AARCH64 = "-Dos.arch=aarch64", LINUX = "-Dos.name=Linux";

    @Test
    void autoOnMacOsAppleSiliconRunsOnCpuFastAndSaysWhyWithoutLoadingJCuda() throws Exception {
        assertNoNativesPlatform(run(Backend.AUTO, null, MAC, AARCH64), "Mac OS X aarch64");
    }

    @Test
    void autoOnMacOsIntelRunsOnCpuFastAndSaysWhyWithoutLoadingJCuda() throws Exception {
        assertNoNativesPlatform(run(Backend.AUTO, null, MAC, "-Dos.arch=x86_64"), "Mac OS X x86_64");
    }

    @Test
    void autoOnLinuxAarch64RunsOnCpuFastAndSaysWhyWithoutLoadingJCuda() throws Exception {
        assertNoNativesPlatform(run(Backend.AUTO, null, LINUX, AARCH64), "Linux aarch64");
    }

    private static void assertNoNativesPlatform(Child child, String platform) {
        String why = "CUDA backend unavailable: JCuda 12.6.0 has no native library for " + platform
                + " (fusedopt runs on the CPU backends here)";
        assertEquals("CPU_FAST", child.get("backend"), child.text());
        assertEquals("AUTO: " + why, child.get("reason"), child.text());
        assertEquals("true", child.get("sameBitsAsReference"), child.text());
        assertNothingNativeLoaded(child);
        assertTrue(child.loadedClasses().contains("io.fusedopt.cuda.CudaProbe$Holder"), "the probe ran: " + child.text());
    }

    @Test
    void cudaRequestedOnLinuxAarch64IsRefusedWithTheSameSentence() throws Exception {
        Child child = run(Backend.CUDA, null, LINUX, AARCH64);
        assertEquals("CUDA backend unavailable: JCuda 12.6.0 has no native library for Linux aarch64"
                + " (fusedopt runs on the CPU backends here)", child.get("refused"), child.text());
        assertNothingNativeLoaded(child);
    }

    /**
     * On this machine as it is (Linux x86-64, JCuda's natives on the class path) without an NVIDIA
     * driver: the probe says so before loading JCuda, which would extract its library for nothing.
     */
    @Test
    void autoWithoutADriverSaysSoWithoutLoadingJCuda() throws Exception {
        Map<String, String> environment = new HashMap<>(System.getenv());
        environment.remove("LD_LIBRARY_PATH");
        assumeTrue(CudaProbe.driverMissing(LibUtils.calculateOS(), environment, Path.of("/")) != null,
                "this machine has an NVIDIA driver library (or is not Linux or Windows)");
        assumeTrue(CudaProbe.nativesMissing("", "", "12.6.0", CudaProbe.driverLibraryFileName(),
                SimulatedPlatformTest.class.getClassLoader(), System.getProperty("java.library.path", "")) == null,
                "JCuda has no natives for this machine");
        Child child = run(Backend.AUTO, environment);
        assertEquals("CPU_FAST", child.get("backend"), child.text());
        String reason = child.get("reason");
        assertTrue(reason.startsWith("AUTO: CUDA backend unavailable: no NVIDIA driver is installed: "), child.text());
        assertTrue(reason.contains(LibUtils.calculateOS() == LibUtils.OSType.WINDOWS ? "nvcuda.dll" : "libcuda.so.1"), reason);
        assertNothingNativeLoaded(child);
    }

    /**
     * CPU and CPU_FAST requested explicitly never run the probe: no class of the probe or of JCuda
     * is loaded, nothing is extracted, on a platform with natives and on one without.
     */
    @Test
    void theCpuBackendsNeverLookForCuda() throws Exception {
        for (Backend backend : List.of(Backend.CPU, Backend.CPU_FAST)) {
            for (String[] platform : List.of(new String[0], new String[] {MAC, AARCH64})) {
                Child child = run(backend, null, platform);
                assertEquals(backend.name(), child.get("backend"), child.text());
                assertEquals("requested", child.get("reason"), child.text());
                assertNothingNativeLoaded(child);
                // The log is read right: the child's own classes are in it.
                assertTrue(child.loadedClasses().contains(ProbeChild.class.getName()), String.join("\n", child.loadedClasses()));
                List<String> probeOrJCuda = child.loadedClasses().stream()
                        .filter(c -> c.startsWith("jcuda.") || c.startsWith("io.fusedopt.cuda.CudaProbe")).toList();
                assertEquals(List.of(), probeOrJCuda, backend + " " + List.of(platform));
            }
        }
    }

    private static void assertNothingNativeLoaded(Child child) {
        assertEquals(List.of(), child.extracted(), "JCuda extracted its natives: " + child.text());
        assertFalse(child.loadedClasses().contains("jcuda.driver.JCudaDriver"), "JCudaDriver was loaded: " + child.text());
    }
}
