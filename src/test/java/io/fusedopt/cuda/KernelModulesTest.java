package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.fusedopt.GpuTests;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.UpdateKernel;
import java.util.List;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * An engine loads the control family when it opens and every other family at its first use (an
 * optimizer's build no longer loads all twenty); the probe loads them all.
 */
@Tag("gpu")
class KernelModulesTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void anEngineLoadsAFamilyAtItsFirstUse() {
        UpdateKernel adam = Algorithms.kernels().stream().filter(k -> k.family().equals("adam")).findFirst().orElseThrow();
        try (CudaEngine engine = new CudaEngine(0)) {
            KernelModules modules = engine.modules();
            assertEquals(List.of("control"), modules.loadedFamilies(), "at open");
            assertNotNull(modules.function(adam, false));
            assertNotNull(modules.function(adam, true));
            assertEquals(List.of("adam", "control"), modules.loadedFamilies().stream().sorted().toList(), "after Adam's entry points");
            assertNotNull(modules.function("convert", "fusedopt_zero_fill"));
            assertEquals(3, modules.loadedFamilies().size(), "after the zero fill: " + modules.loadedFamilies());
        }
    }

    @Test
    void theProbesModulesHoldEveryFamilyAndEveryEntryPoint() {
        CUdevice device = new CUdevice();
        Driver.check(JCudaDriver.cuDeviceGet(device, 0), "cuDeviceGet");
        CUcontext context = new CUcontext();
        Driver.check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        try {
            Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            KernelModules all = KernelModules.loadingAll(context, "device 0");
            assertEquals(all.families(), all.loadedFamilies());
            for (UpdateKernel kernel : Algorithms.kernels()) assertNotNull(all.function(kernel, false), kernel.toString());
            all.close();
            assertEquals(List.of(), all.loadedFamilies(), "unloaded at close");
            assertThrows(IllegalStateException.class, () -> all.function("control", "fusedopt_grad_stats"), "no use after close");
        } finally {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
        }
    }
}
