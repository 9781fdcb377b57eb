package io.fusedopt.cuda;

import io.fusedopt.BackendUnavailableException;
import io.fusedopt.CudaException;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/** The part of the probe that calls the driver; only loaded once JCuda's natives have loaded. */
final class DriverProbe {
    private DriverProbe() {}

    static CudaProbe.Result run(int requiredVersion) {
        int init = JCudaDriver.cuInit(0);
        if (init == CUresult.CUDA_ERROR_NO_DEVICE) {
            return CudaProbe.Result.unavailable("the NVIDIA driver is installed but reports no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)");
        }
        if (init != CUresult.CUDA_SUCCESS) {
            return CudaProbe.Result.unavailable("cuInit failed: " + CUresult.stringFor(init) + " " + Driver.describe(init));
        }
        int[] version = new int[1];
        Driver.check(JCudaDriver.cuDriverGetVersion(version), "cuDriverGetVersion");
        int[] count = new int[1];
        Driver.check(JCudaDriver.cuDeviceGetCount(count), "cuDeviceGetCount");
        if (count[0] == 0) {
            return CudaProbe.Result.unavailable("the NVIDIA driver reports no CUDA device");
        }
        CUdevice device = new CUdevice();
        Driver.check(JCudaDriver.cuDeviceGet(device, 0), "cuDeviceGet(0)");
        String name = Driver.deviceName(device);
        if (version[0] < requiredVersion) {
            return new CudaProbe.Result(false, "the NVIDIA driver supports CUDA " + cudaVersion(version[0])
                    + " but this build's kernels need CUDA " + cudaVersion(requiredVersion)
                    + " (" + driverSeries(requiredVersion) + "); update the driver, or build the kernels with your own"
                    + " nvcc (mvn package with nvcc on the PATH)", version[0], count[0], name);
        }
        String unusable = openContextAndLoadKernels(device, "CUDA device 0 (" + name + ")");
        if (unusable != null) return new CudaProbe.Result(false, unusable, version[0], count[0], name);
        return new CudaProbe.Result(true, count[0] + " CUDA device(s), device 0: " + name + ", driver supports CUDA "
                + cudaVersion(version[0]), version[0], count[0], name);
    }

    /**
     * Does what an optimizer does first, so that "usable" means an optimizer can open: retains the
     * device's primary context (fails on an exclusive-process GPU another process uses, or out of
     * memory) and loads every kernel module into it; then unloads and releases. Like an optimizer,
     * it leaves that primary context current on the calling thread. Null when that worked, else why not.
     */
    private static String openContextAndLoadKernels(CUdevice device, String what) {
        CUcontext context = new CUcontext();
        int retain = JCudaDriver.cuDevicePrimaryCtxRetain(context, device);
        if (retain != CUresult.CUDA_SUCCESS) {
            return "the primary context of " + what + " cannot be created (cuDevicePrimaryCtxRetain: " + CUresult.stringFor(retain)
                    + " " + Driver.describe(retain) + "); the GPU may be in exclusive-process mode and used by another"
                    + " process, or out of memory";
        }
        try {
            Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            KernelModules.loadingAll(context, what).close();
            return null;
        } catch (BackendUnavailableException e) {
            return e.getMessage();
        } catch (CudaException e) {
            return "the kernels cannot be loaded on " + what + ": " + e.getMessage();
        } finally {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
        }
    }

    /** cuDriverGetVersion encodes CUDA X.Y as X*1000 + Y*10. */
    static String cudaVersion(int encoded) {
        return (encoded / 1000) + "." + (encoded % 1000) / 10;
    }

    /** The first Linux driver series of a CUDA major version, for messages. */
    static String driverSeries(int encoded) {
        return switch (encoded / 1000) {
            case 11 -> "driver series 450 or newer";
            case 12 -> "driver series 525 or newer";
            case 13 -> "driver series 580 or newer";
            default -> "a driver for CUDA " + cudaVersion(encoded) + " or newer";
        };
    }
}
