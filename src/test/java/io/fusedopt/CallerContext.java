package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUdevice;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * The test's own retain of a device's primary context, as a framework that owns device memory
 * holds one. fusedopt's retain is fusedopt's: when an optimizer closes it releases it, and if that
 * was the last retain the driver resets the context and frees all its memory, so memory the test
 * allocates must live under a retain of the test's.
 */
public final class CallerContext implements AutoCloseable {
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();

    /** Retains device {@code ordinal}'s primary context and makes it current on this thread. */
    public CallerContext(int ordinal) {
        check(JCudaDriver.cuInit(0), "cuInit");
        check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain(" + ordinal + ")");
        makeCurrent();
    }

    /** Makes the context current on the calling thread (fusedopt's calls leave its own current). */
    public void makeCurrent() {
        check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    /** Free device memory, from cuMemGetInfo in this context. */
    public long freeBytes() {
        makeCurrent();
        long[] free = new long[1], total = new long[1];
        check(JCudaDriver.cuMemGetInfo(free, total), "cuMemGetInfo");
        return free[0];
    }

    /** Allocates device memory the test owns, under this retain, as another library would. */
    public Allocation allocate(long bytes) {
        return new Allocation(this, bytes);
    }

    /** Device memory the test owns; freed (in its context) at close. */
    public static final class Allocation extends CUdeviceptr implements AutoCloseable {
        private final CallerContext context;

        private Allocation(CallerContext context, long bytes) {
            this.context = context;
            context.makeCurrent();
            check(JCudaDriver.cuMemAlloc(this, bytes), "cuMemAlloc(" + bytes + ")");
        }

        public long address() {
            return getNativePointer() + getByteOffset();
        }

        @Override
        public void close() {
            context.makeCurrent();
            check(JCudaDriver.cuMemFree(this), "cuMemFree");
        }
    }

    @Override
    public void close() {
        check(JCudaDriver.cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease");
    }

    static void check(int result, String call) {
        assertEquals(CUresult.CUDA_SUCCESS, result, call + ": " + CUresult.stringFor(result));
    }
}
