package io.fusedopt.cuda;

import io.fusedopt.CudaException;
import java.nio.charset.StandardCharsets;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * The checks around JCuda's driver API: every {@code CUresult} becomes a {@link CudaException}
 * naming the call. JCuda's process-wide {@code setExceptionsEnabled} is never touched: it would
 * change the behaviour of every other library in the process that uses JCuda.
 */
final class Driver {
    private Driver() {}

    /** Throws {@link CudaException} unless {@code result} is CUDA_SUCCESS. */
    static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) {
            throw new CudaException(call, result, CUresult.stringFor(result), describe(result));
        }
    }

    /** The driver's own description of an error code, or "" where it has none. */
    static String describe(int result) {
        String[] text = new String[1];
        return JCudaDriver.cuGetErrorString(result, text) == CUresult.CUDA_SUCCESS && text[0] != null ? text[0] : "";
    }

    /** A JCuda device pointer for a raw device address (JCuda adds the byte offset to a null base). */
    static CUdeviceptr pointerAt(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }

    /** The device's name, as cuDeviceGetName gives it. */
    static String deviceName(CUdevice device) {
        byte[] name = new byte[256];
        check(JCudaDriver.cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int end = 0;
        while (end < name.length && name[end] != 0) end++;
        return new String(name, 0, end, StandardCharsets.US_ASCII);
    }

    /** Allocates device memory and returns its address. */
    static long allocate(long bytes) {
        AddressablePointer pointer = new AddressablePointer();
        check(JCudaDriver.cuMemAlloc(pointer, bytes), "cuMemAlloc(" + bytes + " bytes)");
        return pointer.address();
    }
}
