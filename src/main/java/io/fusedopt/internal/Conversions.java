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
