package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CublasSgdBaseline;
import io.fusedopt.cuda.CublasSupport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** cuBLAS is optional: where it cannot load, one clear message says why and the rest works. */
class CublasSupportTest {

    @Test
    void unavailableCublasSaysWhyAndRefusesCleanly() {
        CublasSupport.Status status = CublasSupport.status();
        assumeFalse(status.available(), "cuBLAS is available on this machine");
        assertTrue(status.reason().startsWith("cuBLAS features are off"), status.reason());
        BackendUnavailableException e = assertThrows(BackendUnavailableException.class, () -> new CublasSgdBaseline(0, 16));
        assertTrue(e.getMessage().equals(status.reason()));
        // and the library itself is unaffected
        assertTrue(Trajectory.cpu(Sgd.builder().optLearningRate(1).build(), 1f, 1f)[0] == 0f);
    }

    /** On the CUDA emulator, libcublas.so.12 is its cuBLAS double: cuBLAS features run, and say on what. */
    @Test
    @Tag("gpu")
    void emulatorCublasIsTheDouble() {
        GpuTests.assumeGpu();
        assumeTrue(GpuTests.onEmulator(), "runs on the CUDA emulator only");
        CublasSupport.Status status = CublasSupport.status();
        assertTrue(status.available(), status.reason());
        assertTrue(status.reason().contains("the CUDA emulator's cuBLAS double"), status.reason());
    }
}
