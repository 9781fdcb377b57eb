package io.fusedopt.example;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Parameter;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cuda.CudaProbe;
import jcuda.Pointer;
import jcuda.Sizeof;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUresult;

/**
 * Library integration: the caller owns the device memory (here allocated with JCuda in the device's
 * primary context, as a framework would) and hands fusedopt raw addresses. fusedopt updates the
 * memory in place and never frees it; the caller frees it after closing the optimizer. On a machine
 * without a usable GPU it says why and exits. Run with
 * {@code mvn -B -q compile exec:java -Dexec.mainClass=io.fusedopt.example.DevicePointerExample}.
 */
public final class DevicePointerExample {
    private DevicePointerExample() {}

    /** A device pointer whose raw address the caller can read (JCuda keeps it in a protected field). */
    static final class OwnedDevicePointer extends CUdeviceptr {
        long address() {
            return getNativePointer() + getByteOffset();
        }
    }

    public static void main(String[] args) {
        if (!CudaProbe.result().available()) {
            System.out.println("No usable GPU, nothing to show: " + CudaProbe.result().reason());
            return;
        }
        int n = 1 << 20;
        check(cuInit(0), "cuInit");
        CUdevice device = new CUdevice();
        check(cuDeviceGet(device, 0), "cuDeviceGet");
        CUcontext context = new CUcontext();
        check(cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        OwnedDevicePointer weights = new OwnedDevicePointer(), grads = new OwnedDevicePointer();
        check(cuMemAlloc(weights, (long) n * Sizeof.FLOAT), "cuMemAlloc");
        check(cuMemAlloc(grads, (long) n * Sizeof.FLOAT), "cuMemAlloc");
        try {
            float[] host = new float[n];
            java.util.Arrays.fill(host, 1f);
            check(cuMemcpyHtoD(weights, Pointer.to(host), (long) n * Sizeof.FLOAT), "cuMemcpyHtoD");
            java.util.Arrays.fill(host, 0.5f);
            check(cuMemcpyHtoD(grads, Pointer.to(host), (long) n * Sizeof.FLOAT), "cuMemcpyHtoD");

            try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Adam.adamW().optLearningRate(1e-2).build())) {
                TensorBuffer w = opt.wrapDevicePointer(weights.address(), n);   // checked, never freed by fusedopt
                TensorBuffer g = opt.wrapDevicePointer(grads.address(), n);
                Parameter p = opt.addGroup().add("weights", w, g);
                for (int t = 0; t < 10; t++) opt.step();                         // your backward pass writes grads
                opt.synchronize();
                System.out.println("after 10 steps: weights[0] = " + p.param().toArray()[0] + " on " + opt.deviceDescription());
            }
            check(cuMemcpyDtoH(Pointer.to(host), weights, (long) n * Sizeof.FLOAT), "cuMemcpyDtoH");
            System.out.println("the caller's own copy reads " + host[0]);
        } finally {
            cuMemFree(weights);
            cuMemFree(grads);
            cuDevicePrimaryCtxRelease(device);
        }
    }

    private static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) throw new IllegalStateException(call + " failed: " + CUresult.stringFor(result));
    }
}
