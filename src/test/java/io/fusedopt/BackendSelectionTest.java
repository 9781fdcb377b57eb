package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CudaProbe;
import java.util.List;
import java.util.UUID;
import java.util.logging.Level;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** CUDA requested fails clearly; AUTO falls back to the CPU on any failure to open CUDA and says why. */
class BackendSelectionTest {

    @Test
    void probeIsCachedAndNeverThrows() {
        assertTrue(CudaProbe.result() == CudaProbe.result());
        assertTrue(!CudaProbe.result().reason().isBlank());
    }

    @Test
    void requestingCudaWithoutAGpuFailsWithTheProbesReason() {
        assumeFalse(CudaProbe.result().available(), "this machine has a usable GPU; the no-GPU path is not reachable");
        BackendUnavailableException e = assertThrows(BackendUnavailableException.class,
                () -> DeviceOptimizer.create(Backend.CUDA, Adam.builder().build()));
        assertTrue(e.getMessage().startsWith("CUDA backend unavailable: "), e.getMessage());
        assertTrue(e.getMessage().contains(CudaProbe.result().reason()), e.getMessage());
        // Asked twice, the answer is the same cached one, not a NoClassDefFoundError.
        BackendUnavailableException again = assertThrows(BackendUnavailableException.class,
                () -> DeviceOptimizer.create(Backend.CUDA, Adam.builder().build()));
        assertEquals(e.getMessage(), again.getMessage());
    }

    @Test
    void autoFallsBackToTheCpuAndSaysWhy() {
        assumeFalse(CudaProbe.result().available(), "this machine has a usable GPU; AUTO picks CUDA here");
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.AUTO, Adam.builder().build())) {
            assertEquals(Backend.CPU_FAST, opt.backend());
            assertTrue(opt.backendReason().contains(CudaProbe.result().reason()), opt.backendReason());
        }
    }

    /**
     * The machines CI runs on have JCuda's natives but no NVIDIA driver: the probe names the missing
     * libcuda.so.1 (found missing before loading JCuda; SimulatedPlatformTest checks that nothing was
     * extracted), or, where the file exists but cannot be loaded, the loader's own sentence.
     */
    @Test
    void noDriverIsNamedAsSuch() {
        assumeFalse(CudaProbe.result().available(), "this machine has a usable GPU");
        String reason = CudaProbe.result().reason();
        assumeTrue(reason.startsWith("no NVIDIA driver is installed") || reason.contains("JCuda driver library"),
                "this machine has a driver; the probe said: " + reason);
        assertTrue(reason.contains("libcuda.so.1") || reason.contains("nvcuda.dll"), reason);
    }

    /**
     * AUTO logs its choice once per process for each distinct outcome, not once per optimizer: five
     * builds that fail the same way log one line, a different failure logs its own line once. (Each
     * failure message here is new to this JVM, so that other tests' AUTO builds cannot have logged it.)
     */
    @Test
    void autoLogsEachOutcomeOncePerProcess() {
        String first = "CUDA backend unavailable: simulated failure " + UUID.randomUUID();
        String second = "CUDA backend unavailable: another simulated failure " + UUID.randomUUID();
        try (LogRecords log = new LogRecords()) {
            for (int i = 0; i < 5; i++) {
                for (String failure : List.of(first, second)) {
                    try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build())
                            .cudaOpener((ordinal, stream) -> {
                                throw new BackendUnavailableException(failure);
                            }).build()) {
                        assertEquals(Backend.CPU_FAST, opt.backend());
                        // Every optimizer still says why, logged or not.
                        assertTrue(opt.backendReason().equals("AUTO: " + failure), opt.backendReason());
                    }
                }
            }
            List<String> lines = log.messages(Level.ALL);
            assertEquals(1, lines.stream().filter(l -> l.contains(first)).count(), lines.toString());
            assertEquals(1, lines.stream().filter(l -> l.contains(second)).count(), lines.toString());
            assertTrue(lines.stream().allMatch(l -> l.startsWith("fusedopt: AUTO chose ")), lines.toString());
        }
    }

    /**
     * AUTO falls back, with the reason, on every failure to open CUDA, not only on "no GPU": a
     * context that cannot be created (busy exclusive-process GPU, out of memory), kernels that do
     * not load, a stream or ordinal CUDA refuses. The failures are injected (no healthy machine
     * makes a driver call fail on demand); requested explicitly, CUDA fails with the failure itself.
     */
    @Test
    void autoFallsBackOnEveryFailureToOpenCudaAndLogsWhy() {
        List<RuntimeException> failures = List.of(
                new CudaException("cuDevicePrimaryCtxRetain(0)", 46, "CUDA_ERROR_DEVICE_UNAVAILABLE",
                        "CUDA-capable device(s) is/are busy or unavailable"),
                new CudaException("cuModuleLoadData(adam.fatbin)", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
                new BackendUnavailableException("CUDA backend unavailable: no GPU here"),
                new IllegalArgumentException("CUstream 0x1234 does not belong to the primary context of CUDA device 0"));
        for (RuntimeException failure : failures) {
            DeviceOptimizer.Builder auto = DeviceOptimizer.builder(Adam.builder().build()).cudaOpener((ordinal, stream) -> {
                throw failure;
            });
            try (LogRecords log = new LogRecords(); DeviceOptimizer opt = auto.build()) {
                assertEquals(Backend.CPU_FAST, opt.backend());
                assertTrue(opt.backendReason().startsWith("AUTO: "), opt.backendReason());
                assertTrue(opt.backendReason().contains(failure.getMessage()), opt.backendReason());
                Level expected = failure instanceof BackendUnavailableException ? Level.INFO : Level.WARNING;
                List<String> lines = log.messages(expected);
                assertTrue(lines.stream().anyMatch(l -> l.contains("AUTO chose") && l.contains(failure.getMessage())),
                        "logged at " + expected + ": " + lines);
            }
            assertSame(failure, assertThrows(RuntimeException.class, () -> auto.optBackend(Backend.CUDA).build()));
        }
    }

    /**
     * The same on a GPU, provoked for real: the CUDA engine cannot be built for a device ordinal
     * that does not exist, nor for a stream of another device. AUTO falls back and says why.
     */
    @Test
    @Tag("gpu")
    void autoFallsBackWhenTheCudaEngineCannotBeBuilt() {
        GpuTests.assumeGpu();
        int devices = CudaProbe.result().deviceCount();
        Adam adam = Adam.builder().build();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(adam).optDeviceOrdinal(devices).build()) {
            assertEquals(Backend.CPU_FAST, opt.backend());
            assertTrue(opt.backendReason().contains("CUDA device ordinal " + devices + " does not exist"), opt.backendReason());
        }
        assertThrows(IllegalArgumentException.class,
                () -> DeviceOptimizer.builder(adam).optBackend(Backend.CUDA).optDeviceOrdinal(devices).build());
        if (devices < 2) return; // the emulator has 2 devices: there the stream case runs too
        try (CallerContext device1 = new CallerContext(1); CudaBackendTest.CallerStream stream = new CudaBackendTest.CallerStream(device1);
             DeviceOptimizer opt = DeviceOptimizer.builder(adam).optCudaStream(stream.handle()).build()) {
            assertEquals(Backend.CPU_FAST, opt.backend());
            assertTrue(opt.backendReason().contains("does not belong to the primary context of CUDA device 0"), opt.backendReason());
        }
    }
}
