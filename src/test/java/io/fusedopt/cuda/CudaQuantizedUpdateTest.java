package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.GpuTests;
import io.fusedopt.Precision;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.StochasticRounding;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.algorithms.AdamAlgorithm;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The 8-bit update path of the kernels (fo_multi_tensor_q8 in kernels/fusedopt_common.cuh, the
 * {@code _q8} entry points), launched directly with a segment table built here: Adam's codes,
 * absmax and params after each of two steps equal, bit for bit, a Java model of the rule
 * (dequantize every state with {@link BlockwiseQuantization}, run the kernel's reference update on
 * float32, quantize every block back; params as the mixed entry point stores them). Three tensors in
 * two groups: float32 operands with a partial last block, a block whose gradient holds a NaN (its
 * absmax becomes NaN, its elements NaN from then on) and an all-zero block (absmax 0); a bf16 param
 * with a float32 master; an fp16 param rounded stochastically, with AMSGrad's third state.
 */
@Tag("gpu")
class CudaQuantizedUpdateTest {
    private static final int BLOCK = BlockwiseQuantization.BLOCK;
    private static final UpdateKernel ADAM = new AdamAlgorithm().kernels().get(0);
    private static final int NAN_BLOCK = 5, ZERO_BLOCK = 9;
    private static final long SEED = 0x5eed_0029_1234_5678L;
    private static final float INV_GRAD_SCALE = 0.5f;
    private static final byte PADDING = 0x5a;

    /** One tensor: its formats, host model and device addresses. */
    private static final class Tensor {
        final int n;
        final int group;
        final Precision paramPrecision;
        final Precision gradPrecision;
        final int stream;
        final CodeMap[] maps;
        /** The param as the update reads it: the master when there is one, else the stored param widened. */
        float[] param;
        short[] param16;
        final boolean master;
        float[] grad;
        final byte[][] codes;
        final float[][] absmax;
        long paramAddress, gradAddress, masterAddress;
        final DeviceQuantizedBuffer[] states = new DeviceQuantizedBuffer[3];

        Tensor(int n, int group, Precision paramPrecision, Precision gradPrecision, boolean master, int stream, CodeMap... maps) {
            this.n = n;
            this.group = group;
            this.paramPrecision = paramPrecision;
            this.gradPrecision = gradPrecision;
            this.master = master;
            this.stream = stream;
            this.maps = Arrays.copyOf(maps, 3);
            codes = new byte[3][];
            absmax = new float[3][];
        }

        int blocks() {
            return BlockwiseQuantization.blocks(n);
        }
    }

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void adamCodesAbsmaxAndParamsEqualTheJavaModel() {
        Random random = new Random(29);
        // Group 0: plain Adam. Group 1: AdamW with AMSGrad, the gradient unscaled, 16-bit params without master rounded stochastically.
        int[] flags = {0, KernelFlags.DECOUPLED_DECAY | KernelFlags.AMSGRAD | KernelFlags.UNSCALE | KernelFlags.STOCHASTIC_ROUNDING};
        float[] hyper = new float[2 * StepScalars.HYPER_STRIDE];
        setAdamHyper(hyper, 0, 1e-2f, 0f, 0.9f, 0.999f, 1e-8f);
        setAdamHyper(hyper, 1, 3e-3f, 0.05f, 0.8f, 0.99f, 1e-6f);
        List<Tensor> tensors = List.of(
                new Tensor(4096 + 300, 0, Precision.FP32, Precision.FP32, false, 11, CodeMap.SIGNED, CodeMap.UNSIGNED),
                new Tensor(600, 1, Precision.BF16, Precision.FP16, true, 12, CodeMap.SIGNED, CodeMap.UNSIGNED, CodeMap.UNSIGNED),
                new Tensor(700, 1, Precision.FP16, Precision.BF16, false, 13, CodeMap.SIGNED, CodeMap.UNSIGNED, CodeMap.UNSIGNED));
        for (Tensor t : tensors) initialize(t, random);

        try (CudaEngine engine = new CudaEngine(0)) {
            engine.makeCurrent();
            for (Tensor t : tensors) upload(engine, t);
            SegmentTable segments = SegmentTable.of(tensors.stream().mapToLong(t -> t.n).toArray());
            byte[] chunkBytes = DeviceSegmentTable.encodeChunks(segments);
            byte[] tensorBytes = encodeTensors(tensors);
            long tensorTable = engine.upload(Pointer.to(tensorBytes), tensorBytes.length, "tensor table");
            long chunkTable = engine.upload(Pointer.to(chunkBytes), chunkBytes.length, "chunk table");
            long maps = engine.codeMapsAddress();
            long hyperTable = engine.upload(Pointer.to(hyper), 4L * hyper.length, "hyper-parameters");
            long flagTable = engine.upload(Pointer.to(flags), 4L * flags.length, "flags");
            long control = engine.upload(Pointer.to(new byte[StepControl.BYTES]), StepControl.BYTES, "control block");
            long steps = engine.upload(Pointer.to(new byte[2 * CudaStepProgram.ENTRY_STEP_BYTES]), 2L * CudaStepProgram.ENTRY_STEP_BYTES,
                    "entry steps");
            engine.synchronize(); // the uploads are queued on the engine's stream; the copies below are synchronous
            CUfunction update = engine.modules().function(ADAM.family(), ADAM.entryPoint() + "_q8");
            Pointer params = Pointer.to(ptr(tensorTable), ptr(chunkTable), Pointer.to(new int[] {segments.chunkCount()}), ptr(control),
                    ptr(hyperTable), ptr(steps), ptr(flagTable), ptr(maps));

            for (int step = 1; step <= 2; step++) {
                if (step == 2) for (Tensor t : tensors) newGradient(t, random);
                StepControl c = new StepControl();
                c.step = step;
                c.stepInvGradScale = INV_GRAD_SCALE;
                c.roundingSeed = SEED;
                copyIn(control, DeviceSegmentTable.encodeControl(c));
                copyIn(steps, entrySteps(step, hyper));
                if (step == 1) {
                    engine.launchOverChunks(update, segments.chunkCount(), params, "cuLaunchKernel(fusedopt_adam_q8)");
                } else {  // one block that takes every chunk in turn, reusing its shared maps and lanes
                    Driver.check(JCudaDriver.cuLaunchKernel(update, 1, 1, 1, BLOCK, 1, 1, 0, engine.stream(), params, null),
                            "cuLaunchKernel(fusedopt_adam_q8)");
                }
                engine.synchronize();
                for (Tensor t : tensors) {
                    modelStep(t, step, hyper, flags[t.group]);
                    compare(t, "step " + step + ", tensor of " + t.n + " (" + t.paramPrecision + (t.master ? " with master" : "") + ")");
                }
            }
            Tensor first = tensors.get(0);
            assertTrue(Float.isNaN(first.absmax[0][NAN_BLOCK]) && Float.isNaN(first.absmax[1][NAN_BLOCK]), "the NaN block's absmax");
            assertEquals(0f, first.absmax[0][ZERO_BLOCK], "the zero block's absmax");
        }
    }

    private static void setAdamHyper(float[] hyper, int group, float lr, float weightDecay, float beta1, float beta2, float eps) {
        int h = group * StepScalars.HYPER_STRIDE;
        hyper[h + StepScalars.H_LR] = lr;
        hyper[h + StepScalars.H_WEIGHT_DECAY] = weightDecay;
        hyper[h + StepScalars.H_FIRST_OWN] = beta1;
        hyper[h + StepScalars.H_FIRST_OWN + 1] = beta2;
        hyper[h + StepScalars.H_FIRST_OWN + 2] = eps;
    }

    /** Params, a gradient, and states quantized from random values (second moments non-negative). */
    private static void initialize(Tensor t, Random random) {
        float[] values = new float[t.n];
        for (int i = 0; i < t.n; i++) values[i] = (float) random.nextGaussian();
        t.param = values.clone();
        if (t.paramPrecision != Precision.FP32) {
            t.param16 = new short[t.n];
            for (int i = 0; i < t.n; i++) t.param16[i] = Conversions.narrow(t.paramPrecision, values[i]);
            if (!t.master) for (int i = 0; i < t.n; i++) t.param[i] = Conversions.widen(t.paramPrecision, t.param16[i]);
        }
        t.grad = gradient(t, random);
        for (int j = 0; j < 3; j++) {
            if (t.maps[j] == null) continue;
            float[] state = new float[t.n];
            for (int i = 0; i < t.n; i++) {
                float v = (float) (random.nextGaussian() * 1e-2);
                state[i] = t.maps[j] == CodeMap.SIGNED ? v : v * v;
            }
            if (t.group == 0) Arrays.fill(state, ZERO_BLOCK * BLOCK, (ZERO_BLOCK + 1) * BLOCK, 0f);
            t.codes[j] = new byte[t.n];
            t.absmax[j] = new float[t.blocks()];
            BlockwiseQuantization.quantizeBlocks(state, t.maps[j], t.codes[j], t.absmax[j]);
        }
    }

    /** A gradient in the tensor's grad format, widened: in tensor 0 a NaN in one block and zeros in another. */
    private static float[] gradient(Tensor t, Random random) {
        float[] grad = new float[t.n];
        for (int i = 0; i < t.n; i++) {
            grad[i] = t.gradPrecision == Precision.FP32 ? (float) random.nextGaussian()
                    : Conversions.widen(t.gradPrecision, Conversions.narrow(t.gradPrecision, (float) random.nextGaussian()));
        }
        if (t.group == 0) {
            grad[NAN_BLOCK * BLOCK + 17] = Float.NaN;
            Arrays.fill(grad, ZERO_BLOCK * BLOCK, (ZERO_BLOCK + 1) * BLOCK, 0f);
        }
        return grad;
    }

    private static void newGradient(Tensor t, Random random) {
        t.grad = gradient(t, random);
        copyIn(t.gradAddress, operandBytes(t.grad, t.gradPrecision));
    }

    /** Params, grads and masters as plain allocations; the states as the engine allocates them (DeviceQuantizedBuffer). */
    private static void upload(CudaEngine engine, Tensor t) {
        byte[] param = t.paramPrecision == Precision.FP32 ? operandBytes(t.param, Precision.FP32) : shortBytes(t.param16);
        t.paramAddress = engine.upload(Pointer.to(param), param.length, "param");
        byte[] grad = operandBytes(t.grad, t.gradPrecision);
        t.gradAddress = engine.upload(Pointer.to(grad), grad.length, "grad");
        if (t.master) {
            byte[] master = operandBytes(t.param, Precision.FP32);
            t.masterAddress = engine.upload(Pointer.to(master), master.length, "master");
        }
        for (int j = 0; j < 3; j++) {
            if (t.maps[j] == null) continue;
            DeviceQuantizedBuffer state = (DeviceQuantizedBuffer) engine.allocateQuantized(t.n, t.maps[j], 0f);
            state.writeCodes(0, t.codes[j], 0, t.n);
            state.writeAbsmax(0, t.absmax[j], 0, t.blocks());
            byte[] padding = new byte[paddingBytes(state)];
            Arrays.fill(padding, PADDING); // the bytes between codes and absmax must stay as they are
            engine.synchronize();
            copyIn(state.address() + t.n, padding);
            t.states[j] = state;
        }
    }

    private static int paddingBytes(DeviceQuantizedBuffer state) {
        return (int) (state.absmaxAddress() - state.address() - state.length());
    }

    /** FoTensor rows (kernels/fusedopt_common.cuh); the _q8 path reads no vector phase. */
    private static byte[] encodeTensors(List<Tensor> tensors) {
        ByteBuffer b = ByteBuffer.allocate(tensors.size() * DeviceSegmentTable.TENSOR_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (Tensor t : tensors) {
            b.putLong(t.paramAddress).putLong(t.gradAddress);
            for (DeviceQuantizedBuffer state : t.states) b.putLong(state == null ? 0 : state.address());
            b.putLong(t.masterAddress).putLong(t.n).putInt(t.group).putInt(-1);
            b.putInt(t.paramPrecision.code()).putInt(t.gradPrecision.code()).putInt(DeviceSegmentTable.quantizedStateDtype(t.maps))
                    .putInt(t.stream);
        }
        return b.array();
    }

    /** FoEntryStep rows: each group's step and learning rate. */
    private static byte[] entrySteps(long step, float[] hyper) {
        ByteBuffer b = ByteBuffer.allocate(2 * CudaStepProgram.ENTRY_STEP_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int g = 0; g < 2; g++) b.putLong(step).putFloat(hyper[g * StepScalars.HYPER_STRIDE + StepScalars.H_LR]).putInt(0);
        return b.array();
    }

    /** The rule on the host: dequantize, the reference update on float32, quantize back; the param stored as the mixed path does. */
    private static void modelStep(Tensor t, long step, float[] hyper, int flags) {
        float[] scalars = new float[StepScalars.SCALAR_STRIDE];
        int h = t.group * StepScalars.HYPER_STRIDE;
        ADAM.scalars(hyper, h, hyper[h + StepScalars.H_LR], flags, step, scalars, 0);
        float[] grad = t.grad.clone();
        if ((flags & KernelFlags.UNSCALE) != 0) for (int i = 0; i < t.n; i++) grad[i] *= INV_GRAD_SCALE;
        FloatBuffer[] operands = new FloatBuffer[5];
        operands[0] = FloatBuffer.wrap(t.param);
        operands[1] = FloatBuffer.wrap(grad);
        float[][] states = new float[3][];
        for (int j = 0; j < 3; j++) {
            if (t.maps[j] == null) continue;
            states[j] = new float[t.n];
            BlockwiseQuantization.dequantizeBlocks(t.codes[j], t.absmax[j], t.maps[j], states[j]);
            operands[2 + j] = FloatBuffer.wrap(states[j]);
        }
        ADAM.reference(operands, 0, 0, t.n, scalars, flags);
        for (int j = 0; j < 3; j++) {
            if (states[j] != null) BlockwiseQuantization.quantizeBlocks(states[j], t.maps[j], t.codes[j], t.absmax[j]);
        }
        if (t.paramPrecision == Precision.FP32) return;
        if ((flags & KernelFlags.STOCHASTIC_ROUNDING) != 0 && !t.master) {
            new StochasticRounding().narrow(t.paramPrecision, t.param, 0, t.param16, 0, t.n, SEED, step, t.stream, 0);
        } else {
            for (int i = 0; i < t.n; i++) t.param16[i] = Conversions.narrow(t.paramPrecision, t.param[i]);
        }
        if (!t.master) for (int i = 0; i < t.n; i++) t.param[i] = Conversions.widen(t.paramPrecision, t.param16[i]);
    }

    private static void compare(Tensor t, String how) {
        for (int j = 0; j < 3; j++) {
            if (t.maps[j] == null) continue;
            byte[] codes = new byte[t.n];
            float[] absmax = new float[t.blocks()];
            t.states[j].readCodes(0, codes, 0, t.n);
            t.states[j].readAbsmax(0, absmax, 0, absmax.length);
            for (int i = 0; i < t.n; i++) assertEquals(t.codes[j][i], codes[i], how + ": slot " + j + " code of element " + i);
            for (int b = 0; b < t.blocks(); b++) {
                assertEquals(Float.floatToRawIntBits(t.absmax[j][b]), Float.floatToRawIntBits(absmax[b]),
                        how + ": slot " + j + " absmax bits of block " + b);
            }
            byte[] padding = copyOut(t.states[j].address() + t.n, paddingBytes(t.states[j]));
            for (int i = 0; i < padding.length; i++) assertEquals(PADDING, padding[i], how + ": slot " + j + " padding byte " + i);
        }
        // floatToIntBits for float32: a NaN's payload is the hardware's, not part of the rule.
        if (t.paramPrecision == Precision.FP32 || t.master) {
            FloatBuffer values = floats(copyOut(t.master ? t.masterAddress : t.paramAddress, 4 * t.n));
            for (int i = 0; i < t.n; i++) {
                assertEquals(Float.floatToIntBits(t.param[i]), Float.floatToIntBits(values.get(i)), how + ": float32 param " + i);
            }
        }
        if (t.paramPrecision != Precision.FP32) {
            ByteBuffer stored = ByteBuffer.wrap(copyOut(t.paramAddress, 2 * t.n)).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < t.n; i++) assertEquals(t.param16[i], stored.getShort(2 * i), how + ": 16-bit param " + i);
        }
    }

    private static byte[] operandBytes(float[] values, Precision precision) {
        if (precision == Precision.FP32) {
            ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(values);
            return b.array();
        }
        short[] bits = new short[values.length];
        for (int i = 0; i < values.length; i++) bits[i] = Conversions.narrow(precision, values[i]);
        return shortBytes(bits);
    }

    private static byte[] shortBytes(short[] bits) {
        ByteBuffer b = ByteBuffer.allocate(2 * bits.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asShortBuffer().put(bits);
        return b.array();
    }

    private static FloatBuffer floats(byte[] bytes) {
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }

    private static void copyIn(long address, byte[] bytes) {
        Driver.check(JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(address), Pointer.to(bytes), bytes.length), "cuMemcpyHtoD");
    }

    private static byte[] copyOut(long address, int bytes) {
        byte[] out = new byte[bytes];
        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(out), Driver.pointerAt(address), bytes), "cuMemcpyDtoH");
        return out;
    }

    private static Pointer ptr(long address) {
        return Pointer.to(Driver.pointerAt(address));
    }
}
