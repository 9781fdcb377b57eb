package io.fusedopt.cuda;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Precision;
import io.fusedopt.Sgd;
import io.fusedopt.TensorBuffer;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUgraph;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * The CUDA emulator's three open questions (README, "The CUDA emulator"), asked of whatever driver
 * this process loads: the real one on a GPU, or the emulator in a rehearsal, where the answers show
 * what the emulator assumes. Run by benchmarks/gpu/evidence.sh, each answer one line:
 *
 * <ol>
 *   <li>the error a call returns on a primary context that its last release reset (the emulator
 *       says CUDA_ERROR_CONTEXT_IS_DESTROYED, 709);
 *   <li>whether an async copy from pageable memory (a Java array, a direct buffer) is legal during
 *       stream capture, per capture mode (the emulator records it, since an H200 with driver 580
 *       did so in every mode: the replay reads the host memory as it is then);
 *   <li>the bits of NaN results in fp32, bf16 and fp16 params: made by the update (inf - inf) and
 *       carried from a NaN gradient with a payload, beside the CPU reference's bits (the bit-exact
 *       contract says equal; these are where hardware may differ).
 * </ol>
 *
 * <p>Question 1 must come first, before anything retains the primary context. Exit code 0 when
 * every question got an answer (whatever it is), 1 when one could not be asked.
 */
public final class DriverQuestions {
    private DriverQuestions() {}

    /** What the emulator does today, for the comparison line. */
    static final int EMULATOR_AFTER_RESET = CUresult.CUDA_ERROR_CONTEXT_IS_DESTROYED;
    static final int EMULATOR_PAGEABLE_CAPTURE = CUresult.CUDA_SUCCESS;

    public static void main(String[] args) {
        JCudaDriver.setExceptionsEnabled(false);
        List<String> failures = new ArrayList<>();
        ask("1 reset", failures, DriverQuestions::afterPrimaryContextReset);
        System.out.println("driver: " + CudaProbe.result().reason());
        ask("2 capture", failures, DriverQuestions::pageableCopyDuringCapture);
        ask("3 nan", failures, DriverQuestions::nanBits);
        if (!failures.isEmpty()) {
            System.out.println("questions not answered: " + failures);
            System.exit(1);
        }
    }

    private static void ask(String question, List<String> failures, Runnable body) {
        try {
            body.run();
        } catch (RuntimeException e) {
            System.out.println(question + ": could not be asked: " + e);
            failures.add(question);
        }
    }

    private static void afterPrimaryContextReset() {
        check(JCudaDriver.cuInit(0), "cuInit");
        CUdevice device = new CUdevice();
        check(JCudaDriver.cuDeviceGet(device, 0), "cuDeviceGet");
        CUcontext context = new CUcontext();
        check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
        long address = Driver.allocate(4);
        check(JCudaDriver.cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease");
        int copy = JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(address), Pointer.to(new float[1]), 4);
        int synchronize = JCudaDriver.cuCtxSynchronize();
        int free = JCudaDriver.cuMemFree(Driver.pointerAt(address));
        JCudaDriver.cuCtxSetCurrent(new CUcontext());
        System.out.println(String.format(Locale.ROOT,
                "1 reset: after the last release, on the reset context: cuMemcpyHtoD -> %s,"
                        + " cuCtxSynchronize -> %s, cuMemFree -> %s; the emulator returns %s (%s)",
                name(copy), name(synchronize), name(free), name(EMULATOR_AFTER_RESET),
                copy == EMULATOR_AFTER_RESET ? "same" : "DIFFERS"));
    }

    private static void pageableCopyDuringCapture() {
        CUdevice device = new CUdevice();
        check(JCudaDriver.cuDeviceGet(device, 0), "cuDeviceGet");
        CUcontext context = new CUcontext();
        check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        try {
            check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            long address = Driver.allocate(4096);
            CUstream stream = new CUstream();
            check(JCudaDriver.cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
            int[] modes = {CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_GLOBAL,
                    CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED};
            for (int mode : modes) {
                for (String source : List.of("Java array", "direct buffer")) {
                    Pointer host = source.equals("Java array") ? Pointer.to(new float[1024])
                            : Pointer.to(ByteBuffer.allocateDirect(4096));
                    int begin = JCudaDriver.cuStreamBeginCapture(stream, mode);
                    int copy = JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(address), host, 4096, stream);
                    CUgraph graph = new CUgraph();
                    int end = JCudaDriver.cuStreamEndCapture(stream, graph);
                    if (end == CUresult.CUDA_SUCCESS) JCudaDriver.cuGraphDestroy(graph);
                    int after = JCudaDriver.cuStreamSynchronize(stream);
                    System.out.println(String.format(Locale.ROOT,
                            "2 capture: mode %s, from a %s: begin -> %s, cuMemcpyHtoDAsync -> %s, end -> %s, then synchronize -> %s;"
                                    + " the emulator answers the copy with %s (%s)",
                            CUstreamCaptureMode.stringFor(mode), source, name(begin), name(copy), name(end), name(after),
                            name(EMULATOR_PAGEABLE_CAPTURE), copy == EMULATOR_PAGEABLE_CAPTURE ? "same" : "DIFFERS"));
                }
            }
            JCudaDriver.cuStreamDestroy(stream);
            JCudaDriver.cuMemFree(Driver.pointerAt(address));
        } finally {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
        }
    }

    /** A generated NaN (p = inf, g = inf: p - lr*g) and a carried one (g = NaN with a payload), per param format. */
    private static void nanBits() {
        float carried = Float.intBitsToFloat(0x7FC01234);
        float[] params = {Float.POSITIVE_INFINITY, 1f, Float.NEGATIVE_INFINITY, 1f};
        float[] grads = {Float.POSITIVE_INFINITY, carried, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0xFFC05678)};
        String[] what = {"inf - inf", "carried 0x7FC01234", "-inf + inf", "carried 0xFFC05678"};
        for (Precision precision : Precision.values()) {
            int[] device = stepBits(Backend.CUDA, precision, params, grads);
            int[] reference = stepBits(Backend.CPU, precision, params, grads);
            for (int i = 0; i < what.length; i++) {
                System.out.println(String.format(Locale.ROOT, "3 nan: %s param, %s: device 0x%08X, CPU reference 0x%08X (%s)",
                        precision, what[i], device[i], reference[i], device[i] == reference[i] ? "same" : "DIFFERS"));
            }
        }
    }

    /** The param bits (16-bit formats widened exactly to float32) after one SGD step of rate 1 (p - g). */
    public static int[] stepBits(Backend backend, Precision precision, float[] params, float[] grads) {
        try (DeviceOptimizer optimizer = DeviceOptimizer.create(backend, Sgd.builder().optLearningRate(1.0).build())) {
            TensorBuffer p = optimizer.allocate(params.length, precision);
            TensorBuffer g = optimizer.allocate(grads.length, precision);
            p.copyFrom(params);
            g.copyFrom(grads);
            optimizer.addGroup().add("nan", p, g);
            optimizer.step();
            float[] result = p.toArray();
            int[] bits = new int[result.length];
            for (int i = 0; i < bits.length; i++) bits[i] = Float.floatToRawIntBits(result[i]);
            return bits;
        }
    }

    private static String name(int result) {
        return CUresult.stringFor(result) + " (" + result + ")";
    }

    private static void check(int result, String call) {
        Driver.check(result, call);
    }
}
