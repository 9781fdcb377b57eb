package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.cuda.CudaProbe;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.opentest4j.AssertionFailedError;

/** How GPU tests decide to run, skip or fail, with and without the CUDA emulator (no GPU needed). */
class GpuTestsTest {
    private static final CudaProbe.Result NO_DRIVER = new CudaProbe.Result(false, "libcuda.so.1: cannot open shared object file", 0, 0, "");
    private static final CudaProbe.Result GPU = new CudaProbe.Result(true, "1 CUDA device(s), device 0: NVIDIA H100 80GB HBM3",
            13000, 1, "NVIDIA H100 80GB HBM3");
    private static final CudaProbe.Result EMULATOR = new CudaProbe.Result(true, "2 CUDA device(s), device 0: fusedopt CUDA emulator"
            + " (device 0)", 13000, 2, "fusedopt CUDA emulator (device 0)");

    @TempDir
    Path dir;

    @Test
    void withoutTheEmulatorTheProbeDecides() {
        assertEquals(NO_DRIVER.reason(), GpuTests.skipReason(null, NO_DRIVER));
        assertNull(GpuTests.skipReason(null, GPU));
        assertNull(GpuTests.skipReason(null, EMULATOR));
    }

    @Test
    void anEmulatorThatIsNotReadySkipsWithItsStatus() throws IOException {
        assertTrue(GpuTests.skipReason(dir.toString(), EMULATOR).contains("not built"));
        Files.writeString(dir.resolve("status"), "building: kernels\nstep 2 of 3\n");
        assertEquals("building: kernels\nstep 2 of 3", GpuTests.skipReason(dir.toString(), EMULATOR));
        Files.writeString(dir.resolve("status"), " ready\n");
        assertEquals("ready", GpuTests.skipReason(dir.toString(), EMULATOR), "the first line must be exactly 'ready'");
        Files.writeString(dir.resolve("status"), "");
        assertTrue(GpuTests.skipReason(dir.toString(), EMULATOR).contains("is empty"));
    }

    @Test
    void aReadyEmulatorNeverSkipsAndMustBeWhatTheProbeFound() throws IOException {
        Files.writeString(dir.resolve("status"), "ready\nbuilt from abc123\n");
        assertNull(GpuTests.skipReason(dir.toString(), NO_DRIVER), "an emulator run fails instead of skipping");
        AssertionFailedError unusable = assertThrows(AssertionFailedError.class, () -> GpuTests.requireEmulator(NO_DRIVER));
        assertTrue(unusable.getMessage().contains(NO_DRIVER.reason()), unusable.getMessage());
        assertThrows(AssertionFailedError.class, () -> GpuTests.requireEmulator(GPU));
        assertDoesNotThrow(() -> GpuTests.requireEmulator(EMULATOR));
    }

    @Test
    void theyAlwaysSayWhetherTheyRanOnARealGpuOrTheEmulator() {
        assertFalse(GPU.emulator());
        assertTrue(EMULATOR.emulator());
        assertFalse(NO_DRIVER.emulator());
        assertEquals(GPU.reason() + ": real GPU", GpuTests.runsOn(GPU));
        assertEquals(EMULATOR.reason() + ": CUDA emulator (proves logic, not speed)", GpuTests.runsOn(EMULATOR));
    }
}
