package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import jcuda.LibUtils;
import jcuda.LibUtils.OSType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the probe decides before it loads JCuda, on simulated machines: whether JCuda's driver
 * library for the platform is on the class path or java.library.path, and whether the NVIDIA
 * driver library is where the dynamic loader looks (a folder plays the file system root).
 */
class CudaProbePrecheckTest {
    @TempDir
    Path root;

    static final String LINUX_X86_64 = "libJCudaDriver-12.6.0-linux-x86_64.so";
    static final String LINUX_AARCH64 = "libJCudaDriver-12.6.0-linux-aarch64.so";
    static final String MAC_ARM64 = "libJCudaDriver-12.6.0-apple-aarch64.dylib";
    static final String WINDOWS_X86_64 = "JCudaDriver-12.6.0-windows-x86_64.dll";

    /** A class loader that sees nothing but {@code folder} (no parent but the bootstrap loader). */
    static URLClassLoader loaderOf(Path folder) throws Exception {
        return new URLClassLoader(new URL[] {folder.toUri().toURL()}, null);
    }

    @Test
    void theFileNameIsJCudasOwn() {
        // On this machine, the name JCuda's LibUtils gives, and the natives jar pom.xml's profile adds holds it.
        String name = CudaProbe.driverLibraryFileName();
        assertTrue(name.contains("JCudaDriver-12.6.0-"), name);
        if (LibUtils.calculateOS() == OSType.LINUX && System.getProperty("os.arch").equals("amd64")) {
            assertEquals(LINUX_X86_64, name);
            assertNull(CudaProbe.nativesMissing("Linux", "amd64", "12.6.0", name, getClass().getClassLoader(), ""),
                    "the jcuda-natives linux-x86_64 jar is on the test class path (pom.xml profile jcuda-natives-linux-x86_64)");
        }
        assertEquals("linux-x86_64", CudaProbe.platformOf(LINUX_X86_64, "12.6.0"));
        assertEquals("apple-aarch64", CudaProbe.platformOf(MAC_ARM64, "12.6.0"));
        assertEquals("windows-x86_64", CudaProbe.platformOf(WINDOWS_X86_64, "12.6.0"));
    }

    @Test
    void aPlatformWithoutNativesIsNamedInOneSentence() throws Exception {
        try (URLClassLoader empty = loaderOf(root)) {
            assertEquals("JCuda 12.6.0 has no native library for Mac OS X aarch64 (fusedopt runs on the CPU backends here)",
                    CudaProbe.nativesMissing("Mac OS X", "aarch64", "12.6.0", MAC_ARM64, empty, ""));
            assertEquals("JCuda 12.6.0 has no native library for Linux aarch64 (fusedopt runs on the CPU backends here)",
                    CudaProbe.nativesMissing("Linux", "aarch64", "12.6.0", LINUX_AARCH64, empty, ""));
        }
    }

    @Test
    void aPublishedPlatformWhoseNativesJarIsMissingSaysWhichJar() throws Exception {
        try (URLClassLoader empty = loaderOf(root)) {
            assertEquals("JCuda's native library for Windows 11 amd64 (org.jcuda:jcuda-natives:12.6.0, classifier"
                    + " windows-x86_64) is not on the classpath (fusedopt runs on the CPU backends here)",
                    CudaProbe.nativesMissing("Windows 11", "amd64", "12.6.0", WINDOWS_X86_64, empty, ""));
        }
    }

    @Test
    void nativesAreFoundAsAResourceOrOnTheJavaLibraryPath() throws Exception {
        Path jarContent = Files.createDirectories(root.resolve("jar/lib"));
        Files.write(jarContent.resolve(LINUX_AARCH64), new byte[] {0x7f, 'E', 'L', 'F'});
        try (URLClassLoader loader = loaderOf(root.resolve("jar"))) {
            assertNull(CudaProbe.nativesMissing("Linux", "aarch64", "12.6.0", LINUX_AARCH64, loader, ""));
        }
        // A JCuda built for the platform by the user and put on java.library.path, as JCuda first tries.
        Path libraryPath = Files.createDirectories(root.resolve("native"));
        Files.write(libraryPath.resolve(MAC_ARM64), new byte[] {1});
        try (URLClassLoader empty = loaderOf(root.resolve("nothing"))) {
            assertNull(CudaProbe.nativesMissing("Mac OS X", "aarch64", "12.6.0", MAC_ARM64, empty,
                    "/does/not/exist" + File.pathSeparator + libraryPath));
        }
    }

    @Test
    void linuxWithoutADriverSaysSo() {
        assertEquals("no NVIDIA driver is installed: libcuda.so.1 is not in LD_LIBRARY_PATH, /etc/ld.so.cache or the system"
                + " library folders", CudaProbe.driverMissing(OSType.LINUX, Map.of("LD_LIBRARY_PATH", "/does/not/exist:"), root));
    }

    @Test
    void linuxDriverInLdLibraryPathOrASystemFolder() throws Exception {
        Path emulator = Files.createDirectories(root.resolve("emulator"));
        Files.write(emulator.resolve("libcuda.so.1"), new byte[] {1});
        assertNull(CudaProbe.driverMissing(OSType.LINUX, Map.of("LD_LIBRARY_PATH", "/x:" + emulator), root.resolve("empty")));
        for (String folder : new String[] {"usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib/wsl/lib"}) {
            Path machine = root.resolve("machine-" + folder.replace('/', '-'));
            Files.createDirectories(machine.resolve(folder));
            Files.write(machine.resolve(folder).resolve("libcuda.so.1"), new byte[] {1});
            assertNull(CudaProbe.driverMissing(OSType.LINUX, Map.of(), machine), folder);
        }
    }

    @Test
    void linuxDriverListedInTheLoaderCache() throws Exception {
        Path etc = Files.createDirectories(root.resolve("etc"));
        // ld.so.cache's string table: names and paths, each NUL-terminated.
        Files.write(etc.resolve("ld.so.cache"), "glibc-ld.so.cache1.1\0libc.so.6\0/lib/x86_64-linux-gnu/libc.so.6\0libcuda.so.1\0/opt/nvidia/libcuda.so.1\0"
                .getBytes(StandardCharsets.US_ASCII));
        assertNull(CudaProbe.driverMissing(OSType.LINUX, Map.of(), root));
        // Names that merely contain it do not count.
        Files.write(etc.resolve("ld.so.cache"), "\0libcuda.so.10\0xlibcuda.so.1\0".getBytes(StandardCharsets.US_ASCII));
        assertTrue(CudaProbe.driverMissing(OSType.LINUX, Map.of(), root).contains("libcuda.so.1"));
    }

    @Test
    void theRealLoaderCacheIsRead() {
        Path cache = Path.of("/etc/ld.so.cache");
        assumeTrue(Files.isReadable(cache), "no /etc/ld.so.cache here");
        assertEquals(Boolean.TRUE, CudaProbe.listedInLoaderCache(cache, "libc.so.6"));
        assertEquals(Boolean.FALSE, CudaProbe.listedInLoaderCache(cache, "libfusedopt-no-such-library.so.1"));
    }

    @Test
    void windowsDriverInSystem32OrOnThePath() throws Exception {
        Path windows = Files.createDirectories(root.resolve("Windows/System32"));
        Map<String, String> environment = Map.of("SystemRoot", root.resolve("Windows").toString());
        String missing = CudaProbe.driverMissing(OSType.WINDOWS, environment, root);
        assertTrue(missing.startsWith("no NVIDIA driver is installed: nvcuda.dll is not in "), missing);
        Path elsewhere = Files.createDirectories(root.resolve("elsewhere"));
        Files.write(elsewhere.resolve("nvcuda.dll"), new byte[] {1});
        assertNull(CudaProbe.driverMissing(OSType.WINDOWS, Map.of("SystemRoot", windows.getParent().toString(),
                "PATH", "C:\\nothing;" + elsewhere), root));
        Files.write(windows.resolve("nvcuda.dll"), new byte[] {1});
        assertNull(CudaProbe.driverMissing(OSType.WINDOWS, environment, root));
    }

    @Test
    void elsewhereLoadingDecides() {
        assertNull(CudaProbe.driverMissing(OSType.APPLE, Map.of(), root));
        assertNull(CudaProbe.driverMissing(OSType.UNKNOWN, Map.of(), root));
    }
}
