package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CublasSupport;
import io.fusedopt.cuda.CudaProbe;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The one place GPU tests decide to run or skip, and say where they run, once per run: on a real
 * GPU, or on the CUDA emulator (a test double of libcuda.so.1, src/test/cuda-emulator/) when the
 * system property {@value #EMULATOR_PROPERTY} names its build directory.
 */
public final class GpuTests {
    private GpuTests() {}

    /** The emulator's build directory; its {@code status} file's first line is {@code ready} when it can be used. */
    static final String EMULATOR_PROPERTY = "fusedopt.test.cudaEmulator";

    private static boolean announced;

    /**
     * Skips the calling test where GPU tests cannot run, with the reason. Without the emulator
     * property that is wherever the probe finds no usable GPU. With it, only an emulator that is
     * not ready skips; a ready one must be what the probe found, else the test fails, so that an
     * emulator run never passes by skipping.
     */
    public static synchronized void assumeGpu() {
        String emulatorDirectory = System.getProperty(EMULATOR_PROPERTY);
        CudaProbe.Result probe = CudaProbe.result();
        String skipped = skipReason(emulatorDirectory, probe);
        if (skipped != null) {
            announce("[fusedopt] GPU tests skipped: " + skipped);
            assumeTrue(false, "GPU tests skipped: " + skipped);
        }
        if (emulatorDirectory != null) requireEmulator(probe);
        announce("[fusedopt] GPU tests run on " + runsOn(probe));
    }

    /**
     * For tests of cuBLAS features (Muon's fast mode, the products): on the emulator its cuBLAS
     * double must load, so that CI never skips them; on a real GPU the test is skipped, with the
     * reason, where JCublas finds no cuBLAS it can bind (the first H200 host had CUDA 13's
     * libcublas.so.13 only, and JCublas 12 binds libcublas.so.12).
     */
    public static void assumeCublas() {
        assumeGpu();
        CublasSupport.Status status = CublasSupport.status();
        if (onEmulator()) {
            assertTrue(status.available(), "the emulator ships a cuBLAS double, yet: " + status.reason());
        } else {
            assumeTrue(status.available(), status.reason());
        }
    }

    /** Whether the GPU tests run on the CUDA emulator (its accounting is exact; its timings mean nothing). */
    public static boolean onEmulator() {
        return CudaProbe.result().emulator();
    }

    /** Why GPU tests skip, or null when they run. */
    static String skipReason(String emulatorDirectory, CudaProbe.Result probe) {
        if (emulatorDirectory == null) return probe.available() ? null : probe.reason();
        Path status = Path.of(emulatorDirectory, "status");
        if (!Files.isRegularFile(status)) return "the CUDA emulator is not built: " + status + " does not exist";
        String text;
        try {
            text = Files.readString(status);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + status, e);
        }
        if (text.lines().findFirst().orElse("").equals("ready")) return null;
        return text.isBlank() ? "the CUDA emulator is not ready: " + status + " is empty" : text.strip();
    }

    /** Fails unless the probe found the emulator usable: an emulator run must not pass by skipping. */
    static void requireEmulator(CudaProbe.Result probe) {
        assertTrue(probe.available(), "the CUDA emulator is ready, but CUDA is not usable: " + probe.reason());
        assertTrue(probe.emulator(), "the CUDA emulator is ready, but the driver found is not the emulator: " + probe.reason());
    }

    /** Where GPU tests run, honestly. */
    static String runsOn(CudaProbe.Result probe) {
        return probe.reason() + ": " + probe.kind();
    }

    private static void announce(String line) {
        if (announced) return;
        announced = true;
        System.out.println(line);
    }
}
