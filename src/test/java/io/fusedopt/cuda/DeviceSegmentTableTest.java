package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.fusedopt.internal.SegmentTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

/**
 * The device table's bytes, and the index arithmetic of fo_update_range (kernels/fusedopt_common.cuh)
 * replayed in Java: every element of every chunk is updated exactly once, whatever the shared
 * misalignment of the operands, and 16-byte accesses fall only on 16-byte boundaries.
 */
class DeviceSegmentTableTest {

    @Test
    void misalignedWrappedPointersSelectTheScalarPath() {
        assertEquals(0, DeviceSegmentTable.sharedMisalignment(new long[] {0x1000, 0x2000, 0x3010, 0, 0}));
        assertEquals(1, DeviceSegmentTable.sharedMisalignment(new long[] {0x1004, 0x2014, 0, 0, 0}));
        assertEquals(3, DeviceSegmentTable.sharedMisalignment(new long[] {0x100C, 0x200C, 0x300C, 0x400C, 0x500C}));
        assertEquals(-1, DeviceSegmentTable.sharedMisalignment(new long[] {0x1000, 0x2004, 0, 0, 0}));
        assertEquals(-1, DeviceSegmentTable.sharedMisalignment(new long[] {0x1008, 0x2008, 0x3000, 0, 0}));
    }

    @Test
    void chunkBytesFollowFoChunk() {
        SegmentTable table = SegmentTable.of(new long[] {3, (1L << 31) + 1});
        ByteBuffer b = ByteBuffer.wrap(DeviceSegmentTable.encodeChunks(table)).order(ByteOrder.LITTLE_ENDIAN);
        int last = table.chunkCount() - 1;
        assertEquals(DeviceSegmentTable.CHUNK_BYTES * table.chunkCount(), b.capacity());
        assertEquals(1L << 31, b.getLong(last * 16));
        assertEquals(1, b.getInt(last * 16 + 8));
        assertEquals(0, b.getInt(8));
    }

    @Test
    void launchBlockFollowsTheLaunchStruct() {
        float[][] scalars = {{1f, 2f, 3f}, {4f, 5f, 6f}};
        int[][] flags = {{7}, {9}};
        int[] block = new int[DeviceSegmentTable.launchWords(3)];
        DeviceSegmentTable.packLaunch(3, scalars, flags, block);
        assertEquals(Float.floatToRawIntBits(5f), block[3 + 1]); // s[1].second
        assertEquals(7, block[SegmentTable.MAX_GROUPS * 3]); // flags[0] after all s[]
        assertEquals(9, block[SegmentTable.MAX_GROUPS * 3 + 1]);
        assertEquals(SegmentTable.MAX_GROUPS * 4, block.length);
    }

    @Test
    void updateRangeCoversEveryElementOnceWithAlignedVectors() {
        int blockDim = 256;
        for (int misalign = 0; misalign < 4; misalign++) {
            for (long from : new long[] {0, 1, 2, 3, 65536, 65537}) {
                for (long length : new long[] {0, 1, 2, 3, 4, 5, 7, 8, 1023, 65536}) {
                    long to = from + length;
                    int[] hits = new int[(int) length];
                    // fo_update_range with vector_ok = 1
                    long first = from + ((4 - ((from + misalign) & 3)) & 3);
                    if (first > to) first = to;
                    for (int thread = 0; thread < blockDim; thread++) {
                        for (long k = from + thread; k < first; k += blockDim) hits[(int) (k - from)]++;
                        long vectors = (to - first) >> 2;
                        for (long v = thread; v < vectors; v += blockDim) {
                            long k = first + 4 * v;
                            assertEquals(0, (k + misalign) & 3, "a vector must start on a 16-byte boundary");
                            for (int e = 0; e < 4; e++) hits[(int) (k + e - from)]++;
                        }
                        for (long k = first + 4 * vectors + thread; k < to; k += blockDim) hits[(int) (k - from)]++;
                    }
                    for (int i = 0; i < hits.length; i++) {
                        assertEquals(1, hits[i], "misalign " + misalign + ", from " + from + ", length " + length + ", element " + i);
                    }
                }
            }
        }
    }
}
