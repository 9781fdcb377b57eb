package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.fusedopt.cuda.CudaProbe;
import org.junit.jupiter.api.Test;

/** On a machine without a usable GPU: CUDA fails clearly, AUTO falls back to the CPU and says why. */
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

    @Test
    void noDriverIsNamedAsSuch() {
        assumeFalse(CudaProbe.result().available(), "this machine has a usable GPU");
        String reason = CudaProbe.result().reason();
        // The machines CI runs on have JCuda's natives but no NVIDIA driver.
        assumeFalse(!reason.contains("JCuda driver library"), "this machine has a driver; the probe said: " + reason);
        assertTrue(reason.contains("libcuda.so.1"), reason);
    }
}
