package io.fusedopt.cuda;

import io.fusedopt.BackendUnavailableException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.JCudaDriver;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasPointerMode;

/**
 * An unfused, cuBLAS-composed SGD step ({@code p = p - lr*g} as one {@code cublasSaxpy}) on its own
 * device buffers: the benchmarks' yardstick for what a vendor library reaches on the same memory
 * traffic as fusedopt's SGD kernel (12 bytes per parameter). Only usable where
 * {@link CublasSupport#status()} says so.
 */
public final class CublasSgdBaseline implements AutoCloseable {
    private static final int CHUNK = 1 << 30; // cublasSaxpy takes an int count

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final cublasHandle handle = new cublasHandle();
    private final long param;
    private final long grad;
    private final long length;
    private final float[] alpha = new float[1];
    private boolean closed;

    public CublasSgdBaseline(int deviceOrdinal, long length) {
        CublasSupport.Status status = CublasSupport.status();
        if (!status.available()) throw new BackendUnavailableException(status.reason());
        if (length <= 0) throw new IllegalArgumentException("length must be > 0, got " + length);
        Driver.check(JCudaDriver.cuDeviceGet(device, deviceOrdinal), "cuDeviceGet");
        Driver.check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        this.length = length;
        this.param = Driver.allocate(length * Float.BYTES);
        this.grad = Driver.allocate(length * Float.BYTES);
        checkCublas(JCublas2.cublasCreate(handle), "cublasCreate");
        checkCublas(JCublas2.cublasSetPointerMode(handle, cublasPointerMode.CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    }

    /** Queues one step on the default stream. */
    public void step(float learningRate) {
        if (closed) throw new IllegalStateException("closed");
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        alpha[0] = -learningRate;
        for (long offset = 0; offset < length; offset += CHUNK) {
            int n = (int) Math.min(CHUNK, length - offset);
            checkCublas(JCublas2.cublasSaxpy(handle, n, Pointer.to(alpha),
                    Driver.pointerAt(grad + offset * Float.BYTES), 1, Driver.pointerAt(param + offset * Float.BYTES), 1),
                    "cublasSaxpy");
        }
    }

    /** Sets the parameters and the gradient (for tests: a benchmark only times steps). */
    void load(float[] parameters, float[] gradient) {
        if (parameters.length != length || gradient.length != length) {
            throw new IllegalArgumentException("parameters and gradient must hold " + length + " values, got " + parameters.length
                    + " and " + gradient.length);
        }
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        Driver.check(JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(param), Pointer.to(parameters), length * Float.BYTES), "cuMemcpyHtoD");
        Driver.check(JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(grad), Pointer.to(gradient), length * Float.BYTES), "cuMemcpyHtoD");
    }

    /** The parameters after the steps queued so far (waits for them). */
    float[] parameters() {
        float[] values = new float[Math.toIntExact(length)];
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(values), Driver.pointerAt(param), length * Float.BYTES), "cuMemcpyDtoH");
        return values;
    }

    public void synchronize() {
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        Driver.check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
    }

    private static void checkCublas(int status, String call) {
        if (status != 0) throw new IllegalStateException(call + " failed with cublasStatus " + status);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        JCudaDriver.cuCtxSetCurrent(context);
        JCublas2.cublasDestroy(handle);
        JCudaDriver.cuMemFree(Driver.pointerAt(param));
        JCudaDriver.cuMemFree(Driver.pointerAt(grad));
        JCudaDriver.cuDevicePrimaryCtxRelease(device);
    }
}
