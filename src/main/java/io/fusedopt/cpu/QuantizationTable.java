package io.fusedopt.cpu;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import java.util.Arrays;
import java.util.Objects;

/**
 * {@link BlockwiseQuantization}'s rule without its binary search: the code of a normalized value
 * by one table lookup and one integer comparison, equal to {@link CodeMap#code} for every float
 * (NaN, infinities, signed zeros, subnormals, values beyond the map included), and the block
 * operations built on it. Plain Java, so the fast backend uses it with or without the Vector API
 * ({@link VectorQuantization} vectorizes around the same table).
 *
 * <h2>The table</h2>
 * A float's top {@value #INDEX_BITS} bits (sign, exponent, {@value #MANTISSA_BITS} mantissa
 * bits) select a bucket of 2^{@value #LOW_BITS} consecutive floats. Within one sign,
 * {@link CodeMap#code} never decreases as the magnitude grows on the positive side and never
 * increases on the negative side (it picks the nearest map value through the midpoints), so a
 * bucket's codes are one code up to a threshold and one code from it on, provided no bucket holds
 * two midpoints: the map values of the top binade, [0.5, 1), lie 0.014 (signed) and 0.007
 * (unsigned) apart, 2^-7 of the binade is 0.0039, so buckets of {@value #MANTISSA_BITS} mantissa
 * bits hold at most one (the constructor checks it for every bucket). Each entry packs
 * {@code threshold << 16 | codeFrom << 8 | codeBelow}, the threshold being the low 16 bits of the
 * first float of the bucket with {@code codeFrom}; 0 with both codes equal when the bucket has one
 * code. The bucket of +infinity holds +infinity (code 255) and NaNs (code 0): threshold 1. The
 * entries are computed with {@link CodeMap#code} itself (the code at each end of a bucket, and the
 * threshold by bisection), so the table is the reference's own answers.
 *
 * <p>Of the 2^16 entries (256 KiB per map), a step touches those of the binades its normalized
 * states occupy, a few KiB.
 */
final class QuantizationTable {
    /** Bits of a float's representation that index the table: sign, 8 exponent bits and {@link #MANTISSA_BITS}. */
    static final int INDEX_BITS = 16;
    static final int MANTISSA_BITS = INDEX_BITS - 9;
    /** The bits below the index, compared with the bucket's threshold. */
    static final int LOW_BITS = 32 - INDEX_BITS;
    static final int LOW_MASK = (1 << LOW_BITS) - 1;
    private static final int BLOCK = BlockwiseQuantization.BLOCK;

    private static final QuantizationTable SIGNED = new QuantizationTable(CodeMap.SIGNED);
    private static final QuantizationTable UNSIGNED = new QuantizationTable(CodeMap.UNSIGNED);

    /** Per bucket: threshold &lt;&lt; 16 | codeFrom &lt;&lt; 8 | codeBelow (see the class). */
    private final int[] entries;
    /** The map's values, for dequantizing without a call per element. */
    private final float[] values;
    /** The code of 0 (a block whose absmax is 0 holds only it). */
    private final byte zeroCode;

    private QuantizationTable(CodeMap map) {
        this.values = map.table();
        this.entries = new int[1 << INDEX_BITS];
        for (int bucket = 0; bucket < entries.length; bucket++) entries[bucket] = entry(map, bucket);
        this.zeroCode = (byte) map.code(0f);
    }

    /** The table of {@code map}. */
    static QuantizationTable of(CodeMap map) {
        return map == CodeMap.SIGNED ? SIGNED : UNSIGNED;
    }

    /** The packed entries, for {@link VectorQuantization}'s gathers (never written). */
    int[] entries() {
        return entries;
    }

    private static int entry(CodeMap map, int bucket) {
        int first = bucket << LOW_BITS;
        int codeBelow = map.code(Float.intBitsToFloat(first));
        int codeAtEnd = map.code(Float.intBitsToFloat(first | LOW_MASK));
        if (codeAtEnd == codeBelow) return codeBelow | codeBelow << 8;
        // The first low bits whose code is codeAtEnd: code(first | low) is codeBelow below it.
        int lo = 1, hi = LOW_MASK;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (map.code(Float.intBitsToFloat(first | mid)) == codeAtEnd) hi = mid;
            else lo = mid + 1;
        }
        // Two codes, one step: every float of [first, first + lo) has codeBelow, every later one codeAtEnd.
        boolean nanBucket = first == 0x7F800000; // +infinity, then NaNs
        if (!nanBucket && (Math.abs(codeAtEnd - codeBelow) != 1 || map.code(Float.intBitsToFloat(first | (lo - 1))) != codeBelow)) {
            throw new AssertionError("bucket 0x" + Integer.toHexString(bucket) + " of " + map + " holds more than one step");
        }
        return lo << 16 | codeAtEnd << 8 | codeBelow;
    }

    /** {@link CodeMap#code}{@code (x)}: one lookup, one comparison. */
    int code(float x) {
        int bits = Float.floatToRawIntBits(x);
        int entry = entries[bits >>> LOW_BITS];
        return (bits & LOW_MASK) >= entry >>> 16 ? (entry >>> 8) & 0xFF : entry & 0xFF;
    }

    /**
     * {@link BlockwiseQuantization#absmax}: the largest {@code |v|} of {@code v[from .. from + n)},
     * NaN when one is NaN or infinite. Non-negative floats order as their bits do, and NaN and
     * infinity have the largest magnitude bits: one integer maximum decides both.
     */
    static float absmax(float[] v, int from, int n) {
        Objects.checkFromIndexSize(from, n, v.length);
        int max = 0;
        for (int i = from; i < from + n; i++) max = Math.max(max, Float.floatToRawIntBits(v[i]) & 0x7FFFFFFF);
        return magnitudeOrNaN(max);
    }

    /** The float of the largest magnitude bits, NaN when they are those of an infinity or a NaN. */
    static float magnitudeOrNaN(int maxMagnitudeBits) {
        return maxMagnitudeBits >= 0x7F800000 ? Float.NaN : Float.intBitsToFloat(maxMagnitudeBits);
    }

    /** {@link BlockwiseQuantization#quantizeBlock} (the same codes and absmax), by table. */
    float quantizeBlock(float[] values, int from, int n, byte[] codes, int codesFrom) {
        checkBlock(n, codesFrom, codes.length);
        float absmax = absmax(values, from, n);
        if (!fillsOneCode(absmax, codes, codesFrom, n)) {
            for (int i = 0; i < n; i++) codes[codesFrom + i] = (byte) code(values[from + i] / absmax);
        }
        return absmax;
    }

    /**
     * {@code values[from .. from + n)}, whole blocks of {@link BlockwiseQuantization#BLOCK} but
     * the last, quantized block by block into {@code codes[codesFrom ...]} and
     * {@code absmax[absmaxFrom ...]}, as {@link BlockwiseQuantization#quantizeBlocks} does.
     */
    void quantizeBlocks(float[] values, int from, int n, byte[] codes, int codesFrom, float[] absmax, int absmaxFrom) {
        Objects.checkFromIndexSize(absmaxFrom, BlockwiseQuantization.blocks(n), absmax.length);
        for (int done = 0, b = absmaxFrom; done < n; done += BLOCK, b++) {
            absmax[b] = quantizeBlock(values, from + done, Math.min(BLOCK, n - done), codes, codesFrom + done);
        }
    }

    /**
     * For a block whose every code is known from its absmax alone: absmax 0 (every value is 0,
     * normalized to +0) gives the code of 0, absmax NaN (every value divides to NaN) code 0. Fills
     * them and says so; false for an ordinary absmax, whose codes the caller computes.
     */
    boolean fillsOneCode(float absmax, byte[] codes, int codesFrom, int n) {
        if (absmax == 0f) {
            Arrays.fill(codes, codesFrom, codesFrom + n, zeroCode);
            return true;
        }
        if (absmax != absmax) {
            Arrays.fill(codes, codesFrom, codesFrom + n, (byte) 0);
            return true;
        }
        return false;
    }

    /** {@link BlockwiseQuantization#dequantizeBlock}: {@code map[code] * absmax}. */
    void dequantizeBlock(byte[] codes, int codesFrom, int n, float absmax, float[] out, int outFrom) {
        checkBlock(n, codesFrom, codes.length);
        Objects.checkFromIndexSize(outFrom, n, out.length);
        for (int i = 0; i < n; i++) out[outFrom + i] = values[codes[codesFrom + i] & 0xFF] * absmax;
    }

    /** The inverse of {@link #quantizeBlocks}: {@code n} elements decoded block by block into {@code out[outFrom ...]}. */
    void dequantizeBlocks(byte[] codes, int codesFrom, int n, float[] absmax, int absmaxFrom, float[] out, int outFrom) {
        Objects.checkFromIndexSize(absmaxFrom, BlockwiseQuantization.blocks(n), absmax.length);
        for (int done = 0, b = absmaxFrom; done < n; done += BLOCK, b++) {
            dequantizeBlock(codes, codesFrom + done, Math.min(BLOCK, n - done), absmax[b], out, outFrom + done);
        }
    }

    static void checkBlock(int n, int codesFrom, int codesLength) {
        if (n < 1 || n > BLOCK) throw new IllegalArgumentException("a block has 1.." + BLOCK + " elements, got " + n);
        Objects.checkFromIndexSize(codesFrom, n, codesLength);
    }
}
