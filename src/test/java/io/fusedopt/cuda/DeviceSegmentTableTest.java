package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.SegmentTable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The device table's bytes, and the index arithmetic of fo_update_range (kernels/fusedopt_common.cuh)
 * replayed in Java: every element of every chunk is updated exactly once, whatever the shared
 * misalignment of the operands, and 16-byte accesses fall only on 16-byte boundaries.
 */
class DeviceSegmentTableTest {

    private static final int[] FLOAT32 = {4, 4, 4, 4, 4, 4};

    @Test
    void quantizedStateDtypeMatchesTheHeader() throws IOException {
        String header = Files.readString(Path.of("kernels", "fusedopt_common.cuh"));
        assertEquals(DeviceSegmentTable.STATE_Q8, define(header, "FO_Q8"));
        assertEquals(DeviceSegmentTable.Q8_SIGNED_SHIFT, define(header, "FO_Q8_SIGNED_SHIFT"));
        // Adam's slots: exp_avg on the signed map, exp_avg_sq and max_exp_avg_sq (or none) on the unsigned one.
        assertEquals(3 | 1 << 8, DeviceSegmentTable.quantizedStateDtype(CodeMap.SIGNED, CodeMap.UNSIGNED, null));
        assertEquals(3 | 0b101 << 8, DeviceSegmentTable.quantizedStateDtype(CodeMap.SIGNED, CodeMap.UNSIGNED, CodeMap.SIGNED));
        assertEquals(3, DeviceSegmentTable.quantizedStateDtype(CodeMap.UNSIGNED));
    }

    /** FoMatrix and the product constants of kernels/fusedopt_matrix.cuh, and a row's bytes. */
    @Test
    void matrixTableMatchesTheHeader() throws IOException {
        String header = Files.readString(Path.of("kernels", "fusedopt_matrix.cuh"));
        Matcher size = Pattern.compile("struct FoMatrix \\{\\s+// (\\d+) bytes").matcher(header);
        assertTrue(size.find(), "FoMatrix's size comment");
        assertEquals(DeviceSegmentTable.MATRIX_BYTES, Integer.parseInt(size.group(1)));
        assertEquals(CudaStepProgram.MATRIX_TILE, define(header, "FO_MATRIX_TILE"));
        assertEquals(CudaStepProgram.PRODUCT_GRAM, define(header, "FO_PRODUCT_GRAM"));
        assertEquals(CudaStepProgram.PRODUCT_SQUARE, define(header, "FO_PRODUCT_SQUARE"));
        assertEquals(CudaStepProgram.PRODUCT_COMBINE, define(header, "FO_PRODUCT_COMBINE"));
        assertEquals(CudaStepProgram.FAST_ROUND_X, define(header, "FO_FAST_ROUND_X"));
        assertEquals(CudaStepProgram.FAST_ROUND_GRAM, define(header, "FO_FAST_ROUND_GRAM"));
        assertEquals(CudaStepProgram.FAST_POLYNOMIAL, define(header, "FO_FAST_POLYNOMIAL"));
        assertEquals(CudaStepProgram.FAST_COMBINE, define(header, "FO_FAST_COMBINE"));
        byte[] bytes = DeviceSegmentTable.encodeMatrices(new long[][] {{0x100, 0x200, 0x300, 0x400, 0x500, 0x600}, {1, 2, 3, 4}},
                new long[][] {{33, 17}, {3, 5}}, new int[] {5, 2});
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(2 * DeviceSegmentTable.MATRIX_BYTES, bytes.length);
        assertEquals(0x300, b.getLong(16));
        assertEquals(33, b.getInt(32));
        assertEquals(17, b.getInt(36));
        assertEquals(1, b.getInt(40), "5 steps end in X[1]");
        assertEquals(4, b.getLong(DeviceSegmentTable.MATRIX_BYTES + 24));
        assertEquals(0, b.getInt(DeviceSegmentTable.MATRIX_BYTES + 40), "2 steps end in X[0]");
        assertEquals(0x500, b.getLong(48), "fast mode's bf16 X");
        assertEquals(0x600, b.getLong(56), "fast mode's bf16 A and B");
        assertEquals(0, b.getLong(DeviceSegmentTable.MATRIX_BYTES + 48), "exact mode: no bf16 workspaces");
        assertEquals(0, b.getLong(DeviceSegmentTable.MATRIX_BYTES + 56));
    }

    private static int define(String source, String name) {
        Matcher m = Pattern.compile("#define " + name + "\\s+(\\d+)").matcher(source);
        assertTrue(m.find(), name + " missing");
        return Integer.parseInt(m.group(1));
    }

    @Test
    void misalignedWrappedPointersSelectTheScalarPath() {
        assertEquals(0, DeviceSegmentTable.vectorPhase(new long[] {0x1000, 0x2000, 0x3010, 0, 0, 0}, FLOAT32, 4));
        assertEquals(3, DeviceSegmentTable.vectorPhase(new long[] {0x1004, 0x2014, 0, 0, 0, 0}, FLOAT32, 4));
        assertEquals(1, DeviceSegmentTable.vectorPhase(new long[] {0x100C, 0x200C, 0x300C, 0x400C, 0x500C, 0}, FLOAT32, 4));
        assertEquals(-1, DeviceSegmentTable.vectorPhase(new long[] {0x1000, 0x2004, 0, 0, 0, 0}, FLOAT32, 4));
        assertEquals(-1, DeviceSegmentTable.vectorPhase(new long[] {0x1008, 0x2008, 0x3000, 0, 0, 0}, FLOAT32, 4));
    }

    @Test
    void mixedFormatsShareAPhaseOnlyWhenEveryOperandReachesSixteenBytesTogether() {
        int[] bf16ParamFp32Rest = {2, 4, 4, 4, 4, 4};
        // param bf16 at 0x1002 (element 1 of a 16-byte line of 8), grad fp32 at 0x2004 (element 1 of 4): k = 7 aligns both
        int phase = DeviceSegmentTable.vectorPhase(new long[] {0x1002, 0x2004, 0, 0, 0, 0}, bf16ParamFp32Rest, 8);
        assertEquals(7, phase);
        assertEquals(0, (0x1002 / 2 + phase) % 8);
        assertEquals(0, (0x2004 / 4 + phase) % 4);
        // a bf16 param at an odd byte address cannot be used at all; one needing k = 1 mod 8 and one k = 0 mod 4 conflict
        assertEquals(-1, DeviceSegmentTable.vectorPhase(new long[] {0x1001, 0x2000, 0, 0, 0, 0}, bf16ParamFp32Rest, 8));
        assertEquals(-1, DeviceSegmentTable.vectorPhase(new long[] {0x100E, 0x2000, 0, 0, 0, 0}, bf16ParamFp32Rest, 8));
    }

    @Test
    void controlBlockRoundTripsThroughItsBytes() {
        io.fusedopt.internal.StepControl c = new io.fusedopt.internal.StepControl();
        c.step = 1L << 40;
        c.skippedSteps = 3;
        c.gradSqSum = 2.5;
        c.invGradScale = 1f / 65536;
        c.maxGradNorm = 1f;
        c.gradNorm = 1.58f;
        c.clipCoef = 0.63f;
        c.checkGrads = true;
        c.skipNonFinite = true;
        c.foundNonFinite = true;
        c.skip = true;
        c.stepInvGradScale = 1f / 1024;
        c.dynamicScaling = true;
        c.lossScale = 32768f;
        c.growthTracker = 17;
        c.growthFactor = 2f;
        c.backoffFactor = 0.5f;
        c.growthInterval = 2000;
        c.scaleGrowths = 5;
        c.scaleBackoffs = 1L << 33;
        byte[] bytes = DeviceSegmentTable.encodeControl(c);
        assertEquals(io.fusedopt.internal.StepControl.BYTES, bytes.length);
        io.fusedopt.internal.StepControl d = DeviceSegmentTable.decodeControl(bytes);
        assertEquals(c.step, d.step);
        assertEquals(c.skippedSteps, d.skippedSteps);
        assertEquals(c.gradSqSum, d.gradSqSum);
        assertEquals(c.invGradScale, d.invGradScale);
        assertEquals(c.maxGradNorm, d.maxGradNorm);
        assertEquals(c.gradNorm, d.gradNorm);
        assertEquals(c.clipCoef, d.clipCoef);
        assertEquals(c.checkGrads, d.checkGrads);
        assertEquals(c.skipNonFinite, d.skipNonFinite);
        assertEquals(c.foundNonFinite, d.foundNonFinite);
        assertEquals(c.skip, d.skip);
        assertEquals(c.stepInvGradScale, d.stepInvGradScale);
        assertEquals(c.dynamicScaling, d.dynamicScaling);
        assertEquals(c.lossScale, d.lossScale);
        assertEquals(c.growthTracker, d.growthTracker);
        assertEquals(c.growthFactor, d.growthFactor);
        assertEquals(c.backoffFactor, d.backoffFactor);
        assertEquals(c.growthInterval, d.growthInterval);
        assertEquals(c.scaleGrowths, d.scaleGrowths);
        assertEquals(c.scaleBackoffs, d.scaleBackoffs);
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
    void updateRangeCoversEveryElementOnceWithAlignedVectors() {
        int blockDim = 256;
        for (int width : new int[] {4, 8}) {
            for (int phase = 0; phase < width; phase++) {
                for (long from : new long[] {0, 1, 2, 3, 7, 65536, 65537}) {
                    for (long length : new long[] {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 17, 1023, 65536}) {
                        long to = from + length;
                        int[] hits = new int[(int) length];
                        // fo_update_range with vector_phase = phase
                        long first = from + ((phase - from) & (width - 1));
                        if (first > to) first = to;
                        for (int thread = 0; thread < blockDim; thread++) {
                            for (long k = from + thread; k < first; k += blockDim) hits[(int) (k - from)]++;
                            long vectors = (to - first) / width;
                            for (long v = thread; v < vectors; v += blockDim) {
                                long k = first + width * v;
                                assertEquals(phase, Math.floorMod(k, width), "a vector must start at the aligned phase");
                                for (int e = 0; e < width; e++) hits[(int) (k + e - from)]++;
                            }
                            for (long k = first + width * vectors + thread; k < to; k += blockDim) hits[(int) (k - from)]++;
                        }
                        for (int i = 0; i < hits.length; i++) {
                            assertEquals(1, hits[i], "width " + width + ", phase " + phase + ", from " + from + ", length "
                                    + length + ", element " + i);
                        }
                    }
                }
            }
        }
    }
}
