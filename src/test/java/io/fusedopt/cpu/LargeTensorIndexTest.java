package io.fusedopt.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.SegmentTable;
import org.junit.jupiter.api.Test;

/**
 * The index math of tensors over 2^31 elements, proved without allocating them: the segment table
 * of a (2^32 + 5)-element tensor in long arithmetic, and the mapping of every one of its chunks to
 * a block and an int offset with the production block size (2^28), as {@link FastStepProgram} does.
 */
class LargeTensorIndexTest {
    private static final int SHIFT = BlockedHostBuffer.DEFAULT_BLOCK_SHIFT;

    @Test
    void everyChunkOfAHugeTensorLiesInsideOneBlock() {
        long length = (1L << 32) + 5;
        SegmentTable table = SegmentTable.of(new long[] {3, length, 7});
        long covered = 0;
        long expectedStart = 0;
        int chunksOfBig = 0;
        for (int c = 0; c < table.chunkCount(); c++) {
            if (table.tensor(c) != 1) continue;
            chunksOfBig++;
            long start = table.start(c), end = table.end(c);
            assertEquals(expectedStart, start, "chunks are contiguous");
            int block = BlockedHostBuffer.blockOf(start, SHIFT);
            int offset = BlockedHostBuffer.offsetOf(start, SHIFT);
            assertEquals(block, BlockedHostBuffer.blockOf(end - 1, SHIFT), "chunk " + c + " crosses a block boundary");
            assertTrue(offset >= 0 && (long) offset + (end - start) <= (1L << SHIFT), "int offsets stay inside the block");
            assertEquals(start, ((long) block << SHIFT) + offset, "block and offset give the index back");
            covered += end - start;
            expectedStart = end;
        }
        assertEquals(length, covered);
        assertEquals((length + SegmentTable.CHUNK_ELEMENTS - 1) / SegmentTable.CHUNK_ELEMENTS, chunksOfBig);
    }

    @Test
    void indicesPastIntRangeMapToTheRightBlock() {
        long[] indices = {(1L << 31) - 1, 1L << 31, (1L << 31) + 1, (1L << 32) + 5, 17L * (1L << 28) + 12345};
        for (long i : indices) {
            int block = BlockedHostBuffer.blockOf(i, SHIFT);
            int offset = BlockedHostBuffer.offsetOf(i, SHIFT);
            assertEquals(i / (1L << SHIFT), block, "block of " + i);
            assertEquals(i % (1L << SHIFT), offset, "offset of " + i);
        }
    }
}
