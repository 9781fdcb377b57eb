package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.CudaException;
import io.fusedopt.GpuTests;
import java.util.Arrays;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Capturing a step into a CUDA graph: a failure during the capture is reported as itself. */
@Tag("gpu")
class CudaCaptureTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    /**
     * When queuing the step fails during the capture (a launch error, say), the capture is
     * invalidated and ending it fails as well; what is thrown must be the first failure, the cause,
     * with the end-of-capture failure only attached as suppressed. The failure here is a wait for
     * the capturing stream, which the driver refuses during a capture (and which invalidates it).
     */
    @Test
    void captureKeepsTheFirstCause() {
        try (CudaEngine engine = new CudaEngine(0)) {
            engine.makeCurrent();
            CudaException e = assertThrows(CudaException.class, () -> CudaStepProgram.captureGraph(stream ->
                    Driver.check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize(capturing stream)")));
            assertEquals("cuStreamSynchronize(capturing stream)", e.call(), e.getMessage());
            assertEquals(1, e.getSuppressed().length, Arrays.toString(e.getSuppressed()));
            assertTrue(e.getSuppressed()[0] instanceof CudaException c && c.call().equals("cuStreamEndCapture"),
                    String.valueOf(e.getSuppressed()[0]));
            engine.synchronize(); // the engine's own stream is unaffected
        }
    }
}
