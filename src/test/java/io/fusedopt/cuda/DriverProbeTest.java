package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.CallerContext;
import io.fusedopt.GpuTests;
import jcuda.Pointer;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The probe opens what an optimizer opens (device 0's primary context, every kernel module) before
 * it says "usable", and releases its retain afterwards.
 */
@Tag("gpu")
class DriverProbeTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void theProbeOpensTheContextAndKernelsAndReleasesItsRetain() {
        long address;
        try (CallerContext caller = new CallerContext(0)) {
            address = Driver.allocate(64);
            CudaProbe.Result result = DriverProbe.run(KernelModules.requiredDriverVersion());
            assertTrue(result.available(), result.reason());
            assertTrue(result.reason().contains("device 0: " + result.deviceName()), result.reason());
            assertEquals(CudaProbe.result().emulator(), result.emulator());
            assertEquals(0, deviceOrdinal(address), "the caller's memory is untouched by the probe's retain and release");
        }
        // The caller's release was the last one only if the probe released its own: the context was
        // reset then, and the caller's allocation freed with it.
        try (CallerContext again = new CallerContext(0)) {
            assertNotEquals(0, JCudaDriver.cuPointerGetAttribute(Pointer.to(new int[1]),
                    CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, Driver.pointerAt(address)), "freed by the reset");
        }
    }

    private static int deviceOrdinal(long address) {
        int[] ordinal = new int[1];
        Driver.check(JCudaDriver.cuPointerGetAttribute(Pointer.to(ordinal), CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                Driver.pointerAt(address)), "cuPointerGetAttribute(DEVICE_ORDINAL)");
        return ordinal[0];
    }
}
