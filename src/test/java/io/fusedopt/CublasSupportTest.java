package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import io.fusedopt.cuda.CublasSgdBaseline;
import io.fusedopt.cuda.CublasSupport;
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
}
