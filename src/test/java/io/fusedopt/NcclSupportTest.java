package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CudaProbe;
import io.fusedopt.cuda.NcclSupport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** NCCL is optional: where it cannot load, one sentence says why; on the CUDA emulator it is the double. */
class NcclSupportTest {

    @Test
    void withoutCudaNcclSaysWhyInOneSentence() {
        assumeFalse(CudaProbe.result().available(), "CUDA is available on this machine");
        NcclSupport.Status status = NcclSupport.status();
        assertTrue(!status.available(), status.reason());
        assertEquals("NCCL is unavailable because CUDA is: " + CudaProbe.result().reason(), status.reason());
    }

    @Test
    @Tag("gpu")
    void emulatorNcclIsTheDouble() {
        GpuTests.assumeGpu();
        assumeTrue(GpuTests.onEmulator(), "runs on the CUDA emulator only");
        NcclSupport.Status status = NcclSupport.status();
        assertTrue(status.available(), status.reason());
        assertEquals("libnccl.so.2, NCCL 2.27.7 (the CUDA emulator's NCCL double, ranks as threads of one JVM)", status.reason());
    }
}
