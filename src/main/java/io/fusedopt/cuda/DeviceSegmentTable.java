package io.fusedopt.cuda;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.QuantizedBuffer;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.TensorOperands;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * The byte layouts the kernels read (FoTensor, FoChunk, FoFactoredShape and FoControl in
 * kernels/fusedopt_common.cuh, little-endian). Pure encoding: the engine uploads the bytes.
 */
final class DeviceSegmentTable {
    private DeviceSegmentTable() {}

    static final int TENSOR_BYTES = 80;
    static final int CHUNK_BYTES = 16;
    static final int STATE_SLOTS = 3;
    /** Index of the master address in {@link #addresses}. */
    static final int MASTER = 2 + STATE_SLOTS;
    /** FoTensor.state_dtype of a tensor whose state slots are all 8-bit blockwise (FO_Q8). */
    static final int STATE_Q8 = 3;
    /** In an {@link #STATE_Q8} state_dtype, bit {@code SHIFT + j} marks slot j as using the signed map (FO_Q8_SIGNED_SHIFT). */
    static final int Q8_SIGNED_SHIFT = 8;

    /** The per-tensor descriptors; {@code width} is the kernel's vector width (4 or 8 elements). */
    static byte[] encodeTensors(List<TensorOperands> tensors, long[][] addresses, int width) {
        ByteBuffer b = ByteBuffer.allocate(tensors.size() * TENSOR_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int t = 0; t < tensors.size(); t++) {
            TensorOperands tensor = tensors.get(t);
            long[] a = addresses[t]; // param, grad, slot0..2, master
            int base = t * TENSOR_BYTES;
            for (int j = 0; j <= MASTER; j++) b.putLong(base + 8 * j, a[j]);
            b.putLong(base + 48, tensor.param().length());
            b.putInt(base + 56, tensor.group());
            // The _q8 path takes one element per thread: no vector phase.
            b.putInt(base + 60, tensor.quantized() ? -1 : vectorPhase(a, elementSizes(tensor), width));
            b.putInt(base + 64, tensor.param().precision().code());
            b.putInt(base + 68, tensor.grad().precision().code());
            b.putInt(base + 72, stateDtype(tensor));
            b.putInt(base + 76, tensor.roundingStream());
        }
        return b.array();
    }

    /** FoTensor.state_dtype: the states' precision, or for 8-bit states {@link #quantizedStateDtype} of their maps. */
    static int stateDtype(TensorOperands tensor) {
        if (!tensor.quantized()) return tensor.statePrecision().code();
        CodeMap[] maps = new CodeMap[STATE_SLOTS];
        for (int j = 0; j < tensor.slots().length; j++) {
            if (tensor.slots()[j] instanceof QuantizedBuffer q) maps[j] = q.codeMap();
        }
        return quantizedStateDtype(maps);
    }

    /**
     * The code_maps argument of the _q8 entry points: {@link CodeMap#SIGNED}'s 256 values, then
     * {@link CodeMap#UNSIGNED}'s.
     */
    static float[] codeMaps() {
        float[] maps = new float[2 * BlockwiseQuantization.CODES];
        System.arraycopy(CodeMap.SIGNED.table(), 0, maps, 0, BlockwiseQuantization.CODES);
        System.arraycopy(CodeMap.UNSIGNED.table(), 0, maps, BlockwiseQuantization.CODES, BlockwiseQuantization.CODES);
        return maps;
    }

    /**
     * The state_dtype of a tensor with 8-bit states whose slot j (null where unused) decodes
     * through {@code slotMaps[j]}: {@link #STATE_Q8} and a bit per slot on the signed map.
     */
    static int quantizedStateDtype(CodeMap... slotMaps) {
        int signedSlots = 0;
        for (int j = 0; j < slotMaps.length; j++) if (slotMaps[j] == CodeMap.SIGNED) signedSlots |= 1 << j;
        return STATE_Q8 | signedSlots << Q8_SIGNED_SHIFT;
    }

    /** Bytes per element of each operand, in the order of {@link #addresses}. */
    static int[] elementSizes(TensorOperands tensor) {
        int[] sizes = new int[MASTER + 1];
        sizes[0] = tensor.param().precision().bytes();
        sizes[1] = tensor.grad().precision().bytes();
        for (int j = 0; j < STATE_SLOTS; j++) sizes[2 + j] = tensor.statePrecision().bytes();
        sizes[MASTER] = Precision.FP32.bytes();
        return sizes;
    }

    /**
     * The residue {@code r} in [0, width) such that, at every element index {@code k} with
     * {@code k % width == r}, every non-null operand is aligned for 16-byte accesses of its
     * format ({@code (address / size + k) % (16 / size) == 0}); -1 when there is none (the kernel
     * then uses scalar accesses for the tensor).
     */
    static int vectorPhase(long[] addresses, int[] elementSizes, int width) {
        for (int r = 0; r < width; r++) {
            boolean aligned = true;
            for (int j = 0; j < addresses.length && aligned; j++) {
                long address = addresses[j];
                if (address == 0) continue;
                int size = elementSizes[j];
                aligned = address % size == 0 && (address / size + r) % (16 / size) == 0;
            }
            if (aligned) return r;
        }
        return -1;
    }

    /** sizeof(FoFactoredShape): a factored kernel's tensor as matrices. */
    static final int FACTORED_SHAPE_BYTES = 24;

    /**
     * The FoFactoredShape of each tensor of a factored batch ({@link io.fusedopt.internal.FactoredKernel}):
     * for rank &gt;= 2 its number of R x C matrices of the last two dimensions, the first of its
     * floats in the batch's per-matrix scratch (the tensors' matrices one after the other), R and
     * C; all 0 for a vector. The scratch's length is {@link #factoredMatrices} of every tensor.
     */
    static byte[] encodeFactoredShapes(List<TensorOperands> tensors) {
        ByteBuffer b = ByteBuffer.allocate(tensors.size() * FACTORED_SHAPE_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        long offset = 0;
        for (int t = 0; t < tensors.size(); t++) {
            long[] shape = tensors.get(t).shape();
            if (shape.length < 2) continue;
            int at = t * FACTORED_SHAPE_BYTES;
            long matrices = factoredMatrices(tensors.get(t));
            b.putLong(at, matrices);
            b.putLong(at + 8, offset);
            b.putInt(at + 16, (int) shape[shape.length - 2]);
            b.putInt(at + 20, (int) shape[shape.length - 1]);
            offset += matrices;
        }
        return b.array();
    }

    /** The R x C matrices of a tensor's last two dimensions (0 for a vector or an empty tensor). */
    static long factoredMatrices(TensorOperands tensor) {
        long[] shape = tensor.shape();
        if (shape.length < 2) return 0;
        long size = shape[shape.length - 2] * shape[shape.length - 1];
        return size == 0 ? 0 : tensor.param().length() / size;
    }

    static byte[] encodeChunks(SegmentTable table) {
        ByteBuffer b = ByteBuffer.allocate(table.chunkCount() * CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int c = 0; c < table.chunkCount(); c++) {
            b.putLong(c * CHUNK_BYTES, table.start(c));
            b.putInt(c * CHUNK_BYTES + 8, table.tensor(c));
        }
        return b.array();
    }

    /** sizeof(FoMatrix) in kernels/fusedopt_matrix.cuh. */
    static final int MATRIX_BYTES = 64;

    /**
     * The per-tensor FoMatrix of a matrix batch: for tensor t, its workspaces {@code workspaces[t]}
     * (X[0], X[1], A, B, and in fast mode the bf16 X and the bf16 A/B; absent entries are null
     * pointers), its shape (rows, cols) and which X holds the result after {@code iterations[t]}
     * Newton-Schulz steps (their parity).
     */
    static byte[] encodeMatrices(long[][] workspaces, long[][] shapes, int[] iterations) {
        ByteBuffer b = ByteBuffer.allocate(workspaces.length * MATRIX_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int t = 0; t < workspaces.length; t++) {
            int base = t * MATRIX_BYTES;
            for (int j = 0; j < 4; j++) b.putLong(base + 8 * j, workspaces[t][j]);
            b.putInt(base + 32, Math.toIntExact(shapes[t][0]));
            b.putInt(base + 36, Math.toIntExact(shapes[t][1]));
            b.putInt(base + 40, iterations[t] & 1);
            for (int j = 4; j < workspaces[t].length; j++) b.putLong(base + 48 + 8 * (j - 4), workspaces[t][j]);
        }
        return b.array();
    }

    /** The addresses of a tensor's operands: param, grad, the three state slots, master (0 when absent). */
    static long[] addresses(TensorOperands tensor, ToLongFunction<AbstractTensorBuffer> address) {
        long[] a = new long[MASTER + 1];
        a[0] = address.applyAsLong(tensor.param());
        a[1] = address.applyAsLong(tensor.grad());
        for (int j = 0; j < tensor.slots().length; j++) {
            a[2 + j] = tensor.slots()[j] == null ? 0 : address.applyAsLong(tensor.slots()[j]);
        }
        a[MASTER] = tensor.master() == null ? 0 : address.applyAsLong(tensor.master());
        return a;
    }

    /** The whole control block. */
    static byte[] encodeControl(StepControl c) {
        ByteBuffer b = ByteBuffer.allocate(StepControl.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(StepControl.OFFSET_STEP, c.step);
        b.putLong(StepControl.OFFSET_SKIPPED_STEPS, c.skippedSteps);
        b.putDouble(StepControl.OFFSET_GRAD_SQ_SUM, c.gradSqSum);
        b.putFloat(StepControl.OFFSET_INV_GRAD_SCALE, c.invGradScale);
        b.putFloat(StepControl.OFFSET_MAX_GRAD_NORM, c.maxGradNorm);
        b.putFloat(StepControl.OFFSET_GRAD_NORM, c.gradNorm);
        b.putFloat(StepControl.OFFSET_CLIP_COEF, c.clipCoef);
        b.putInt(StepControl.OFFSET_CHECK_GRADS, c.checkGrads ? 1 : 0);
        b.putInt(StepControl.OFFSET_SKIP_NONFINITE, c.skipNonFinite ? 1 : 0);
        b.putInt(StepControl.OFFSET_FOUND_NONFINITE, c.foundNonFinite ? 1 : 0);
        b.putInt(StepControl.OFFSET_SKIP, c.skip ? 1 : 0);
        b.putFloat(StepControl.OFFSET_STEP_INV_GRAD_SCALE, c.stepInvGradScale);
        b.putInt(StepControl.OFFSET_DYNAMIC_SCALING, c.dynamicScaling ? 1 : 0);
        b.putFloat(StepControl.OFFSET_LOSS_SCALE, c.lossScale);
        b.putInt(StepControl.OFFSET_GROWTH_TRACKER, c.growthTracker);
        b.putDouble(StepControl.OFFSET_GROWTH_FACTOR, c.growthFactor);
        b.putDouble(StepControl.OFFSET_BACKOFF_FACTOR, c.backoffFactor);
        b.putInt(StepControl.OFFSET_GROWTH_INTERVAL, c.growthInterval);
        b.putLong(StepControl.OFFSET_SCALE_GROWTHS, c.scaleGrowths);
        b.putLong(StepControl.OFFSET_SCALE_BACKOFFS, c.scaleBackoffs);
        b.putLong(StepControl.OFFSET_ROUNDING_SEED, c.roundingSeed);
        return b.array();
    }

    static StepControl decodeControl(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        StepControl c = new StepControl();
        c.step = b.getLong(StepControl.OFFSET_STEP);
        c.skippedSteps = b.getLong(StepControl.OFFSET_SKIPPED_STEPS);
        c.gradSqSum = b.getDouble(StepControl.OFFSET_GRAD_SQ_SUM);
        c.invGradScale = b.getFloat(StepControl.OFFSET_INV_GRAD_SCALE);
        c.maxGradNorm = b.getFloat(StepControl.OFFSET_MAX_GRAD_NORM);
        c.gradNorm = b.getFloat(StepControl.OFFSET_GRAD_NORM);
        c.clipCoef = b.getFloat(StepControl.OFFSET_CLIP_COEF);
        c.checkGrads = b.getInt(StepControl.OFFSET_CHECK_GRADS) != 0;
        c.skipNonFinite = b.getInt(StepControl.OFFSET_SKIP_NONFINITE) != 0;
        c.foundNonFinite = b.getInt(StepControl.OFFSET_FOUND_NONFINITE) != 0;
        c.skip = b.getInt(StepControl.OFFSET_SKIP) != 0;
        c.stepInvGradScale = b.getFloat(StepControl.OFFSET_STEP_INV_GRAD_SCALE);
        c.dynamicScaling = b.getInt(StepControl.OFFSET_DYNAMIC_SCALING) != 0;
        c.lossScale = b.getFloat(StepControl.OFFSET_LOSS_SCALE);
        c.growthTracker = b.getInt(StepControl.OFFSET_GROWTH_TRACKER);
        c.growthFactor = b.getDouble(StepControl.OFFSET_GROWTH_FACTOR);
        c.backoffFactor = b.getDouble(StepControl.OFFSET_BACKOFF_FACTOR);
        c.growthInterval = b.getInt(StepControl.OFFSET_GROWTH_INTERVAL);
        c.scaleGrowths = b.getLong(StepControl.OFFSET_SCALE_GROWTHS);
        c.scaleBackoffs = b.getLong(StepControl.OFFSET_SCALE_BACKOFFS);
        c.roundingSeed = b.getLong(StepControl.OFFSET_ROUNDING_SEED);
        return c;
    }
}
