package io.fusedopt.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import java.util.Arrays;
import java.util.Random;
import java.util.function.IntConsumer;
import org.junit.jupiter.api.Test;

/**
 * The fast backend's quantization ({@link QuantizationTable}, {@link VectorQuantization}) against
 * {@link BlockwiseQuantization}'s reference, bit for bit: the code of every float where the rule
 * can turn (every map value, every float32 midpoint and its neighbours up to 2 ulps, each table
 * bucket's ends and threshold), the special values, random floats of every exponent, and the block
 * operations on blocks of every length with zero, NaN, infinite, subnormal and huge elements. (A
 * sweep of all 2^32 floats agreed too; it takes minutes, so it is not a test.)
 */
class QuantizationTableTest {
    private static final int BLOCK = BlockwiseQuantization.BLOCK;
    private static final int[] SPECIAL_BITS = {
        0x00000000, 0x80000000,                         // signed zeros
        0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, // subnormals
        0x00800000, 0x80800000,                         // smallest normals
        0x3F800000, 0xBF800000, 0x3F800001, 0xBF800001, 0x3F7FFFFF, 0xBF7FFFFF, // 1 and its neighbours
        0x40000000, 0xC0000000, 0x7F7FFFFF, 0xFF7FFFFF, // beyond the maps
        0x7F800000, 0xFF800000,                         // infinities
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FA00000, // NaNs
    };

    /** Calls {@code check} with the bits of every float where a code can change, and of the special values. */
    private static void forEachCriticalFloat(CodeMap map, IntConsumer check) {
        float[] values = map.table();
        for (int c = 0; c < values.length; c++) {
            int valueBits = Float.floatToRawIntBits(values[c]);
            check.accept(valueBits);
            check.accept(valueBits ^ 0x80000000); // the negated value
            if (c + 1 == values.length) continue;
            int midpoint = Float.floatToRawIntBits((values[c] + values[c + 1]) * 0.5f);
            for (int ulps = -2; ulps <= 2; ulps++) {
                check.accept(midpoint + ulps);
                check.accept((midpoint + ulps) ^ 0x80000000);
            }
        }
        for (int bits : SPECIAL_BITS) check.accept(bits);
    }

    @Test
    void codeEqualsTheBinarySearchAtEveryMapValueMidpointAndSpecialValue() {
        for (CodeMap map : CodeMap.values()) {
            QuantizationTable table = QuantizationTable.of(map);
            int[] checked = {0};
            forEachCriticalFloat(map, bits -> {
                assertCode(map, table, bits);
                checked[0]++;
            });
            assertEquals(255 * 10 + 256 * 2 + SPECIAL_BITS.length, checked[0], map + ": floats checked");
        }
    }

    /** Each bucket's first and last float and the two floats around its threshold (where the table's own comparison turns). */
    @Test
    void codeEqualsTheBinarySearchAtEveryBucketEdgeAndThreshold() {
        for (CodeMap map : CodeMap.values()) {
            QuantizationTable table = QuantizationTable.of(map);
            int[] entries = table.entries();
            for (int bucket = 0; bucket < entries.length; bucket++) {
                int first = bucket << QuantizationTable.LOW_BITS;
                int threshold = entries[bucket] >>> 16;
                assertCode(map, table, first);
                assertCode(map, table, first | QuantizationTable.LOW_MASK);
                if (threshold > 0) {
                    assertCode(map, table, first | (threshold - 1));
                    assertCode(map, table, first | threshold);
                }
            }
        }
    }

    @Test
    void codeEqualsTheBinarySearchForRandomFloatsOfEveryExponent() {
        Random random = new Random(29);
        for (CodeMap map : CodeMap.values()) {
            QuantizationTable table = QuantizationTable.of(map);
            for (int i = 0; i < 1_000_000; i++) assertCode(map, table, random.nextInt());
            // Uniform bits give each exponent the same share; the maps' range (|x| < 2) gets its own million.
            for (int i = 0; i < 1_000_000; i++) assertCode(map, table, random.nextInt() & 0xBFFFFFFF);
        }
    }

    private static void assertCode(CodeMap map, QuantizationTable table, int bits) {
        float x = Float.intBitsToFloat(bits);
        int expected = map.code(x);
        int actual = table.code(x);
        if (actual != expected) fail(map + ": code of " + x + " (0x" + Integer.toHexString(bits) + ") is " + expected + ", table gave " + actual);
    }

    /** Blocks of critical floats with absmax 1 (a 1 in each block), so that x = v / 1 = v reaches the vector lookup unchanged. */
    @Test
    void vectorLookupEqualsTheBinarySearchAtEveryCriticalFloatUpToOne() {
        assumeVectorQuantization();
        for (CodeMap map : CodeMap.values()) {
            float[] values = new float[4096];
            int[] count = {0};
            forEachCriticalFloat(map, bits -> {
                float x = Float.intBitsToFloat(bits);
                if (Math.abs(x) <= 1f) values[count[0]++] = x;
            });
            float[] block = new float[BLOCK];
            byte[] codes = new byte[BLOCK];
            float[] absmax = new float[1];
            VectorQuantization vectors = new VectorQuantization();
            for (int from = 0; from < count[0]; from += BLOCK - 1) {
                int n = Math.min(BLOCK - 1, count[0] - from);
                System.arraycopy(values, from, block, 0, n);
                Arrays.fill(block, n, BLOCK, 1f);
                vectors.quantizeBlocks(QuantizationTable.of(map), block, 0, BLOCK, codes, 0, absmax, 0);
                assertEquals(1f, absmax[0]);
                for (int i = 0; i < n; i++) {
                    assertEquals(map.code(block[i]), codes[i] & 0xFF, map + ": code of " + block[i]);
                }
            }
        }
    }

    /**
     * Runs of blocks of every length (one block shorter than a vector, whole vectors and a tail,
     * several whole blocks and a partial last one), at offsets, whose values span many binades per
     * block, some blocks holding zeros, -0, subnormals, a NaN or an infinity, or huge values: the
     * codes and absmax of both fast paths against {@link BlockwiseQuantization#quantizeBlock} block
     * by block, then the table's decoded values against {@link BlockwiseQuantization#dequantizeBlock}.
     */
    @Test
    void blocksEqualTheReference() {
        assumeVectorQuantization();
        Random random = new Random(4096);
        VectorQuantization vectors = new VectorQuantization();
        int most = 3 * BLOCK;
        float[] values = new float[most + 3];
        byte[] expectedCodes = new byte[most + 5], tableCodes = new byte[most + 5], vectorCodes = new byte[most + 5];
        float[] expectedAbsmax = new float[5], tableAbsmax = new float[5], vectorAbsmax = new float[5];
        float[] expectedOut = new float[most + 7], tableOut = new float[most + 7];
        for (CodeMap map : CodeMap.values()) {
            QuantizationTable table = QuantizationTable.of(map);
            // Every length up to three vectors, then runs of up to three blocks (the vectors run
            // slowly until compiled: ~200 blocks per map keep the test short).
            for (int trial = 0; trial < 120; trial++) {
                int n = trial < 48 ? trial + 1 : trial % 3 == 0 ? BLOCK * (1 + trial % 2) : 1 + random.nextInt(most);
                int from = trial % 4, codesFrom = trial % 6, outFrom = trial % 8, absmaxFrom = trial % 2;
                int blocks = BlockwiseQuantization.blocks(n);
                for (int b = 0; b < blocks; b++) {
                    int first = b * BLOCK, length = Math.min(BLOCK, n - first);
                    fillBlock(values, from + first, length, random, trial + b, map);
                    expectedAbsmax[absmaxFrom + b] = BlockwiseQuantization.quantizeBlock(values, from + first, length, map,
                            expectedCodes, codesFrom + first);
                    String what = map + " trial " + trial + " block " + b + " (" + length + " elements)";
                    assertBits(expectedAbsmax[absmaxFrom + b], QuantizationTable.absmax(values, from + first, length), what + ": table absmax");
                    assertBits(expectedAbsmax[absmaxFrom + b], VectorQuantization.absmax(values, from + first, length), what + ": vector absmax");
                }
                String what = map + " trial " + trial + " (" + n + " elements)";
                table.quantizeBlocks(values, from, n, tableCodes, codesFrom, tableAbsmax, absmaxFrom);
                vectors.quantizeBlocks(table, values, from, n, vectorCodes, codesFrom, vectorAbsmax, absmaxFrom);
                for (int b = absmaxFrom; b < absmaxFrom + blocks; b++) {
                    assertBits(expectedAbsmax[b], tableAbsmax[b], what + ": table absmax of block " + b);
                    assertBits(expectedAbsmax[b], vectorAbsmax[b], what + ": vector absmax of block " + b);
                }
                for (int i = 0; i < n; i++) {
                    int k = codesFrom + i;
                    if (tableCodes[k] != expectedCodes[k] || vectorCodes[k] != expectedCodes[k]) {
                        fail(what + ": code of " + values[from + i] + " / " + expectedAbsmax[absmaxFrom + i / BLOCK] + " is "
                                + (expectedCodes[k] & 0xFF) + ", table " + (tableCodes[k] & 0xFF) + ", vectors " + (vectorCodes[k] & 0xFF));
                    }
                }
                for (int b = 0; b < blocks; b++) {
                    int first = b * BLOCK;
                    BlockwiseQuantization.dequantizeBlock(expectedCodes, codesFrom + first, Math.min(BLOCK, n - first),
                            expectedAbsmax[absmaxFrom + b], map, expectedOut, outFrom + first);
                }
                table.dequantizeBlocks(expectedCodes, codesFrom, n, expectedAbsmax, absmaxFrom, tableOut, outFrom);
                for (int i = 0; i < n; i++) {
                    assertBits(expectedOut[outFrom + i], tableOut[outFrom + i], what + ": table dequantized " + i);
                }
            }
        }
    }

    /**
     * The default test execution adds jdk.incubator.vector, so the vectors run wherever they are
     * wide enough: 256 bits or more, a byte lane per float lane (SSE and NEON take the table's loops).
     */
    private static void assumeVectorQuantization() {
        assertTrue(VectorSupport.available(), VectorSupport.reason());
        assumeTrue(VectorQuantization.SUPPORTED, "float vectors of " + VectorKernels.SPECIES.vectorBitSize() + " bits");
        assertTrue(VectorSupport.quantizes(), VectorSupport.whyQuantizationLoops());
    }

    /** A block's values: a random scale and spread, with special elements in some trials. */
    private static void fillBlock(float[] values, int from, int n, Random random, int trial, CodeMap map) {
        double scale = Math.pow(2, random.nextInt(260) - 140); // subnormal to near the largest floats
        for (int i = 0; i < n; i++) {
            float v = (float) (scale * random.nextGaussian() * Math.exp(3 * random.nextGaussian()));
            values[from + i] = map == CodeMap.UNSIGNED && trial % 3 != 0 ? Math.abs(v) : v;
        }
        int special = from + random.nextInt(n);
        switch (trial % 11) {
            case 1 -> Arrays.fill(values, from, from + n, trial % 2 == 0 ? 0f : -0f);
            case 2 -> values[special] = Float.NaN;
            case 3 -> values[special] = Float.intBitsToFloat(0xFF800001); // a negative NaN with a payload
            case 4 -> values[special] = trial % 2 == 0 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY;
            case 5 -> values[special] = Float.MAX_VALUE;
            case 6 -> {
                for (int i = 0; i < n; i++) values[from + i] = Float.intBitsToFloat(random.nextInt(1 << 23) | (i % 2) << 31);
            }
            case 7 -> values[special] = -values[special] * 1e30f; // one element far larger than the rest
            default -> { }
        }
    }

    private static void assertBits(float expected, float actual, String what) {
        if (Float.floatToRawIntBits(expected) != Float.floatToRawIntBits(actual)) {
            fail(what + ": expected " + expected + " (0x" + Integer.toHexString(Float.floatToRawIntBits(expected)) + "), got "
                    + actual + " (0x" + Integer.toHexString(Float.floatToRawIntBits(actual)) + ")");
        }
    }
}
