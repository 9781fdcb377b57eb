package io.fusedopt.cuda;

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
        if (version[0] < requiredVersion) {
            return new CudaProbe.Result(false, "the NVIDIA driver supports CUDA " + cudaVersion(version[0])
                    + " but this build's kernels need CUDA " + cudaVersion(requiredVersion)
                    + " (" + driverSeries(requiredVersion) + "); update the driver, or build the kernels with your own"
                    + " nvcc (mvn package with nvcc on the PATH)", version[0], count[0]);
        }
        return new CudaProbe.Result(true, count[0] + " CUDA device(s), driver supports CUDA " + cudaVersion(version[0]),
                version[0], count[0]);
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
