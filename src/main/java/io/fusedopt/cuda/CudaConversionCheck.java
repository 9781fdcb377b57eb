package io.fusedopt.cuda;

import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

/**
 * Runs the kernels' storage conversions (fo_store/fo_load of fusedopt_common.cuh) on a device, so
 * that tests can hold them bit for bit against {@link io.fusedopt.internal.Conversions}.
 */
public final class CudaConversionCheck {
    private CudaConversionCheck() {}

    /** Per input: bf16 and fp16 encodings (low 16 bits) and their float32 decodings. */
    public record Result(short[] bf16, short[] fp16, float[] bf16Back, float[] fp16Back) {}

    public static Result roundTrip(int deviceOrdinal, float[] values) {
        int n = values.length;
        try (CudaEngine engine = new CudaEngine(deviceOrdinal)) {
            engine.makeCurrent();
            // The engine's close() does not know these raw allocations; the finally frees them.
            long[] allocations = new long[5];
            try {
                long in = allocations[0] = Driver.allocate(4L * n);
                long bf16 = allocations[1] = Driver.allocate(2L * n);
                long fp16 = allocations[2] = Driver.allocate(2L * n);
                long bf16Back = allocations[3] = Driver.allocate(4L * n);
                long fp16Back = allocations[4] = Driver.allocate(4L * n);
                Driver.check(JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(in), Pointer.to(values), 4L * n), "cuMemcpyHtoD");
                Pointer params = Pointer.to(Pointer.to(Driver.pointerAt(in)), Pointer.to(Driver.pointerAt(bf16)),
                        Pointer.to(Driver.pointerAt(fp16)), Pointer.to(Driver.pointerAt(bf16Back)),
                        Pointer.to(Driver.pointerAt(fp16Back)), Pointer.to(new long[] {n}));
                engine.launch(engine.modules().function("convert", "fusedopt_convert_round_trip"), n, params,
                        "cuLaunchKernel(fusedopt_convert_round_trip)");
                Result result = new Result(new short[n], new short[n], new float[n], new float[n]);
                Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(result.bf16()), Driver.pointerAt(bf16), 2L * n), "cuMemcpyDtoH");
                Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(result.fp16()), Driver.pointerAt(fp16), 2L * n), "cuMemcpyDtoH");
                Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(result.bf16Back()), Driver.pointerAt(bf16Back), 4L * n), "cuMemcpyDtoH");
                Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(result.fp16Back()), Driver.pointerAt(fp16Back), 4L * n), "cuMemcpyDtoH");
                return result;
            } finally {
                for (long address : allocations) if (address != 0) engine.free(address);
            }
        }
    }
}
