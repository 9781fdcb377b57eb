package io.fusedopt.cuda;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.TensorOperands;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * The byte layout of the segment table as the kernels read it (FoTensor and FoChunk in
 * kernels/fusedopt_common.cuh, little-endian). Pure encoding: the engine uploads the bytes.
 */
final class DeviceSegmentTable {
    private DeviceSegmentTable() {}

    static final int TENSOR_BYTES = 64;
    static final int CHUNK_BYTES = 16;
    static final int STATE_SLOTS = 3;

    /** The per-tensor descriptors, addresses as given (0 for an unused slot). */
    static byte[] encodeTensors(List<TensorOperands> tensors, long[][] addresses) {
        ByteBuffer b = ByteBuffer.allocate(tensors.size() * TENSOR_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int t = 0; t < tensors.size(); t++) {
            long[] a = addresses[t]; // param, grad, slot0..2
            int base = t * TENSOR_BYTES;
            for (int j = 0; j < 2 + STATE_SLOTS; j++) b.putLong(base + 8 * j, a[j]);
            b.putLong(base + 40, tensors.get(t).param().length());
            b.putInt(base + 48, tensors.get(t).group());
            int misalign = sharedMisalignment(a);
            b.putInt(base + 52, misalign >= 0 ? 1 : 0);
            b.putInt(base + 56, Math.max(misalign, 0));
        }
        return b.array();
    }

    /**
     * (address / 4) % 4 when every non-null operand has the same value, so that all of them reach
     * a 16-byte boundary at the same element; -1 otherwise (the kernel then uses scalar accesses).
     */
    static int sharedMisalignment(long[] addresses) {
        int shared = -1;
        for (long address : addresses) {
            if (address == 0) continue;
            int m = (int) ((address >>> 2) & 3);
            if (shared >= 0 && m != shared) return -1;
            shared = m;
        }
        return shared;
    }

    static byte[] encodeChunks(SegmentTable table) {
        ByteBuffer b = ByteBuffer.allocate(table.chunkCount() * CHUNK_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int c = 0; c < table.chunkCount(); c++) {
            b.putLong(c * CHUNK_BYTES, table.start(c));
            b.putInt(c * CHUNK_BYTES + 8, table.tensor(c));
        }
        return b.array();
    }

    /** The addresses of a tensor's operands: param, grad, then the three state slots (0 when absent). */
    static long[] addresses(TensorOperands tensor, java.util.function.ToLongFunction<AbstractTensorBuffer> address) {
        long[] a = new long[2 + STATE_SLOTS];
        a[0] = address.applyAsLong(tensor.param());
        a[1] = address.applyAsLong(tensor.grad());
        for (int j = 0; j < tensor.slots().length; j++) {
            a[2 + j] = tensor.slots()[j] == null ? 0 : address.applyAsLong(tensor.slots()[j]);
        }
        return a;
    }

    /**
     * Packs the groups' scalars and flags into the kernel's parameter block
     * {@code struct { Scalars s[MAX_GROUPS]; int flags[MAX_GROUPS]; }} as 32-bit words.
     */
    static void packLaunch(int scalarCount, float[][] groupScalars, int[][] groupFlags, int[] block) {
        for (int g = 0; g < groupScalars.length; g++) {
            for (int j = 0; j < scalarCount; j++) {
                block[g * scalarCount + j] = Float.floatToRawIntBits(groupScalars[g][j]);
            }
            block[SegmentTable.MAX_GROUPS * scalarCount + g] = groupFlags[g][0];
        }
    }

    static int launchWords(int scalarCount) {
        return SegmentTable.MAX_GROUPS * (scalarCount + 1);
    }
}
