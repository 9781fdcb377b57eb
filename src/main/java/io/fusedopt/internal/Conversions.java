package io.fusedopt.internal;

import io.fusedopt.Precision;

/**
 * Conversions between float32 and the 16-bit formats, bit for bit as the CUDA kernels do them
 * ({@code __float2bfloat16_rn}, {@code __float2half_rn}, {@code __bfloat162float},
 * {@code __half2float}, which compile to PTX {@code cvt}):
 * <ul>
 *   <li>to 16 bits: round to nearest, ties to even; subnormals kept (no flush to zero); values
 *       beyond the largest finite number round to infinity by the same rule (FP16: |x| >= 65520);
 *       every NaN becomes the canonical NaN {@code 0x7FFF};</li>
 *   <li>to float32: exact (every 16-bit value is a float32), NaN stays NaN.</li>
 * </ul>
 * 16-bit values travel as the low 16 bits of a {@code short}.
 */
public final class Conversions {
    private Conversions() {}

    /** {@code value} rounded to the 16-bit format {@code precision} (BF16 or FP16). */
    public static short narrow(Precision precision, float value) {
        return switch (precision) {
            case BF16 -> floatToBf16(value);
            case FP16 -> floatToFp16(value);
            case FP32 -> throw new IllegalArgumentException("FP32 is not a 16-bit format");
        };
    }

    /** The 16-bit value {@code bits} of format {@code precision} as float32 (exact). */
    public static float widen(Precision precision, short bits) {
        return switch (precision) {
            case BF16 -> bf16ToFloat(bits);
            case FP16 -> fp16ToFloat(bits);
            case FP32 -> throw new IllegalArgumentException("FP32 is not a 16-bit format");
        };
    }

    /**
     * {@code value} rounded stochastically to {@code precision} (BF16 or FP16) with the 32 random
     * bits {@code random} (fo_narrow16_stochastic): NaN becomes the canonical NaN and a value the
     * format holds exactly (infinities, zeros) is kept; any other value lies between {@code down},
     * its neighbour toward zero, and {@code up}, the next value away from zero (infinity past the
     * largest finite one), and rounds to {@code up} when
     * {@code (double) unsigned(random) < frac * 2^32}, with {@code frac = (|value| - |down|) / spacing}
     * and {@code spacing} the distance from {@code down} to the next value of its binade (exact in
     * double). So {@code up} comes with probability frac and the rounding is unbiased:
     * E[result] = value, for values within the format's range.
     */
    public static short narrowStochastic(Precision precision, float value, int random) {
        if (Float.isNaN(value)) return CANONICAL_NAN;
        short nearest = narrow(precision, value);
        float nearestValue = widen(precision, nearest);
        if (nearestValue == value) return nearest; // exact (zeros and infinities included)
        float magnitude = Math.abs(value);
        // Round toward zero: the nearest value, or its neighbour toward zero where nearest rounded away.
        short down = Math.abs(nearestValue) > magnitude ? (short) (nearest - 1) : nearest;
        double downMagnitude = Math.abs(widen(precision, down));
        double spacing = spacingAbove(precision, down);
        double frac = (magnitude - downMagnitude) / spacing;
        boolean roundUp = (double) (random & 0xFFFFFFFFL) < frac * 0x1p32;
        return roundUp ? (short) (down + 1) : down;
    }

    /**
     * The distance from the finite 16-bit value {@code bits} to the next value away from zero of
     * the same sign, as if the exponent range went on (a power of two, exact in double): above the
     * largest finite value, the spacing of its binade.
     */
    private static double spacingAbove(Precision precision, short bits) {
        int magnitude = bits & 0x7FFF;
        int mantissaBits = precision == Precision.BF16 ? 7 : 10;
        int exponent = magnitude >>> mantissaBits;
        int bias = precision == Precision.BF16 ? 127 : 15;
        // Subnormals and the smallest normals share the spacing 2^(1 - bias - mantissaBits).
        return Math.scalb(1.0, Math.max(exponent, 1) - bias - mantissaBits);
    }

    /** The NaN both conversions to 16 bits produce, as PTX's cvt does. */
    public static final short CANONICAL_NAN = 0x7FFF;

    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) return CANONICAL_NAN;
        int lsb = (bits >>> 16) & 1;
        return (short) ((bits + 0x7FFF + lsb) >>> 16);
    }

    public static float bf16ToFloat(short value) {
        return Float.intBitsToFloat((value & 0xFFFF) << 16);
    }

    public static short floatToFp16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int abs = bits & 0x7FFFFFFF;
        if (abs > 0x7F800000) return CANONICAL_NAN;
        if (abs >= 0x477FF000) return (short) (sign | 0x7C00); // >= 65520: infinity (65520 ties to even = inf)
        if (abs < 0x38800000) { // below 2^-14: an FP16 subnormal, in units of 2^-24
            if (abs <= 0x33000000) return (short) sign; // <= 2^-25 rounds to zero (2^-25 itself ties to even 0)
            int mantissa = (abs & 0x7FFFFF) | 0x800000;
            int shift = 126 - (abs >>> 23);
            return (short) (sign | roundShiftRight(mantissa, shift));
        }
        int rebiased = ((abs >>> 23) - 127 + 15) << 10 | (abs & 0x7FFFFF) >>> 13;
        int remainder = abs & 0x1FFF;
        if (remainder > 0x1000 || (remainder == 0x1000 && (rebiased & 1) != 0)) rebiased++; // a carry may reach inf
        return (short) (sign | rebiased);
    }

    public static float fp16ToFloat(short value) {
        int h = value & 0xFFFF;
        int sign = (h & 0x8000) << 16;
        int exponent = (h >>> 10) & 0x1F;
        int mantissa = h & 0x3FF;
        if (exponent == 0) {
            return Float.intBitsToFloat(sign | Float.floatToRawIntBits(mantissa * 0x1p-24f)); // exact
        }
        if (exponent == 31) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mantissa << 13));
        }
        return Float.intBitsToFloat(sign | (exponent - 15 + 127) << 23 | mantissa << 13);
    }

    /** value >> shift, rounded to nearest with ties to even. */
    private static int roundShiftRight(int value, int shift) {
        int quotient = value >>> shift;
        int remainder = value & ((1 << shift) - 1);
        int half = 1 << (shift - 1);
        if (remainder > half || (remainder == half && (quotient & 1) != 0)) quotient++;
        return quotient;
    }
}
