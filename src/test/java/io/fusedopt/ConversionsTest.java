package io.fusedopt;

import static io.fusedopt.internal.Conversions.bf16ToFloat;
import static io.fusedopt.internal.Conversions.floatToBf16;
import static io.fusedopt.internal.Conversions.floatToFp16;
import static io.fusedopt.internal.Conversions.fp16ToFloat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Conversions;
import java.math.BigDecimal;
import java.util.Random;
import java.util.function.IntFunction;
import java.util.function.ToIntFunction;
import org.junit.jupiter.api.Test;

/**
 * The 16-bit conversions against an independent oracle: the exactly nearest representable value
 * (compared in BigDecimal), ties to the even encoding. Every 16-bit value, every midpoint between
 * neighbours, the overflow thresholds, subnormals, and random floats.
 */
class ConversionsTest {

    @Test
    void everyBf16AndFp16ValueSurvivesARoundTrip() {
        for (int h = 0; h < 1 << 16; h++) {
            short s = (short) h;
            float b = bf16ToFloat(s);
            float f = fp16ToFloat(s);
            if (Float.isNaN(b)) {
                assertEquals(Conversions.CANONICAL_NAN, floatToBf16(b));
            } else {
                assertEquals(s, floatToBf16(b), "bf16 0x" + Integer.toHexString(h));
            }
            if (Float.isNaN(f)) {
                assertEquals(Conversions.CANONICAL_NAN, floatToFp16(f));
            } else {
                assertEquals(s, floatToFp16(f), "fp16 0x" + Integer.toHexString(h));
            }
        }
    }

    @Test
    void fp16DecodingIsExact() {
        assertEquals(1f, fp16ToFloat((short) 0x3C00));
        assertEquals(65504f, fp16ToFloat((short) 0x7BFF));
        assertEquals(0x1p-24f, fp16ToFloat((short) 0x0001)); // smallest subnormal
        assertEquals(0x1p-14f, fp16ToFloat((short) 0x0400)); // smallest normal
        assertEquals(Float.NEGATIVE_INFINITY, fp16ToFloat((short) 0xFC00));
        assertEquals(-0f, fp16ToFloat((short) 0x8000));
        assertTrue(1 / fp16ToFloat((short) 0x8000) < 0, "negative zero keeps its sign");
    }

    @Test
    void midpointsBetweenNeighboursRoundToTheEvenEncoding() {
        checkMidpoints(h -> fp16ToFloat((short) h), x -> floatToFp16(x), 0x7BFF);
        checkMidpoints(h -> bf16ToFloat((short) h), x -> floatToBf16(x), 0x7F7F);
    }

    private static void checkMidpoints(IntFunction<Float> decodeInt, ToIntFunction<Float> encode, int largestFinite) {
        for (int h = 0; h < largestFinite; h++) {
            for (int sign : new int[] {0, 0x8000}) {
                float lo = decodeInt.apply(sign | h);
                float hi = decodeInt.apply(sign | (h + 1));
                float mid = (float) (((double) lo + hi) / 2); // exact: a midpoint needs one more bit than 16-bit formats have
                assertEquals(((double) lo + hi) / 2, mid, 0.0);
                int even = (h & 1) == 0 ? h : h + 1;
                assertEquals(sign | even, encode.applyAsInt(mid) & 0xFFFF, "midpoint after 0x" + Integer.toHexString(sign | h));
                assertEquals(sign | h, encode.applyAsInt(Math.nextAfter(mid, 0.0)) & 0xFFFF);
                assertEquals(sign | (h + 1), encode.applyAsInt(Math.nextAfter(mid, Math.copySign(Double.POSITIVE_INFINITY, mid))) & 0xFFFF);
            }
        }
    }

    @Test
    void overflowUnderflowAndSpecials() {
        assertEquals((short) 0x7BFF, floatToFp16(65519.996f)); // just below the midpoint to infinity
        assertEquals((short) 0x7C00, floatToFp16(65520f)); // the midpoint ties to even: infinity
        assertEquals((short) 0xFC00, floatToFp16(-1e10f));
        assertEquals((short) 0x0000, floatToFp16(0x1p-25f)); // half of the smallest subnormal: ties to 0
        assertEquals((short) 0x0001, floatToFp16(Math.nextUp(0x1p-25f)));
        assertEquals((short) 0x0002, floatToFp16(0x1.8p-24f)); // 1.5 units: ties to even 2
        assertEquals((short) 0x8000, floatToFp16(-Float.MIN_VALUE));
        assertEquals((short) 0x7F80, floatToBf16(Float.MAX_VALUE)); // rounds up to infinity
        assertEquals((short) 0x0001, floatToBf16(Float.intBitsToFloat(0x00008000 + 1))); // subnormal above the midpoint
        assertEquals((short) 0x0000, floatToBf16(Float.intBitsToFloat(0x00008000))); // subnormal midpoint: even 0
        assertEquals(Conversions.CANONICAL_NAN, floatToBf16(Float.intBitsToFloat(0xFFC00001)));
        assertEquals(Conversions.CANONICAL_NAN, floatToFp16(Float.NaN));
        assertEquals((short) 0x7F80, floatToBf16(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFC00, floatToFp16(Float.NEGATIVE_INFINITY));
    }

    @Test
    void randomFloatsRoundToTheNearestValue() {
        Random random = new Random(5);
        for (int i = 0; i < 200_000; i++) {
            float x = Float.intBitsToFloat(random.nextInt());
            if (Float.isNaN(x)) continue;
            assertNearest(x, floatToBf16(x), bf16ToFloat(floatToBf16(x)), h -> bf16ToFloat((short) h), "bf16");
            if (Math.abs(x) < 65520f) {
                assertNearest(x, floatToFp16(x), fp16ToFloat(floatToFp16(x)), h -> fp16ToFloat((short) h), "fp16");
            }
        }
    }

    /** No encodable value lies closer to x than the result (checked against both neighbours, exactly). */
    private static void assertNearest(float x, short encoded, float decoded, IntFunction<Float> decode, String format) {
        if (Float.isInfinite(decoded)) return; // overflow handled above
        int h = encoded & 0xFFFF;
        BigDecimal exact = new BigDecimal(x);
        BigDecimal distance = exact.subtract(new BigDecimal(decoded)).abs();
        for (int neighbour : new int[] {h - 1, h + 1}) {
            if ((neighbour & 0x7FFF) == 0x7FFF || neighbour < 0 || neighbour > 0xFFFF) continue;
            float other = decode.apply(neighbour);
            if (Float.isNaN(other) || Float.isInfinite(other)) continue;
            int comparison = exact.subtract(new BigDecimal(other)).abs().compareTo(distance);
            assertTrue(comparison >= 0, format + ": " + x + " encoded 0x" + Integer.toHexString(h) + " but 0x"
                    + Integer.toHexString(neighbour) + " is closer");
            if (comparison == 0) assertEquals(0, h & 1, format + ": a tie must go to the even encoding for " + x);
        }
    }
}
