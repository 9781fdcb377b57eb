package io.fusedopt.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The 8-bit blockwise rule of {@link BlockwiseQuantization}: the maps, the nearest-code search
 * against a plain statement of the rule, round trips, the error bound, the special values.
 */
class BlockwiseQuantizationTest {
    private static final int NAN_BITS = 0x7fc00000;

    @Test
    void mapsAre256AscendingDistinctValuesOverTheirRange() {
        for (CodeMap map : CodeMap.values()) {
            float[] v = map.table();
            assertEquals(BlockwiseQuantization.CODES, v.length, map.name());
            for (int c = 1; c < v.length; c++) assertTrue(v[c - 1] < v[c], map + " ascending at " + c);
            assertEquals(256, Arrays.stream(box(v)).distinct().count(), map + " distinct values");
            assertEquals(1f, v[255], map + " ends at 1");
        }
        float[] signed = CodeMap.SIGNED.table();
        assertEquals(-0.99296875f, signed[0], "the signed map has no -1");
        assertEquals(0, Float.floatToRawIntBits(signed[127]), "+0 at code 127");
        assertEquals(127, countWhere(signed, x -> x < 0), "negative values");
        assertEquals(128, countWhere(signed, x -> x > 0), "positive values");
        for (int c = 0; c < 127; c++) assertEquals(-signed[255 - 1 - c], signed[c], "signed map mirrored below 1 at " + c);
        float[] unsigned = CodeMap.UNSIGNED.table();
        assertEquals(0, Float.floatToRawIntBits(unsigned[0]), "+0 at code 0");
        assertEquals("dynamic", CodeMap.SIGNED.bitsandbytesName());
        assertEquals("udynamic", CodeMap.UNSIGNED.bitsandbytesName());
    }

    /**
     * Values of create_dynamic_map(signed=True) as PyTorch 2 prints them on x86-64 (mistral.rs's
     * INT8_CODE table), at codes where leaving out linspace's fused multiply-add (234, 236, 220) or
     * computing in double and rounding once (128, 218, 137) gives another float32.
     */
    @Test
    void signedMapEqualsValuesPrintedFromBitsandbytes() {
        String[][] printed = {{"128", "5.500000384017767e-07"}, {"137", "0.0003812500217463821"},
            {"218", "0.48671871423721313"}, {"220", "0.5148437023162842"}, {"234", "0.7117187976837158"},
            {"236", "0.7398437261581421"}, {"254", "0.992968738079071"}, {"191", "0.10703125596046448"}};
        for (String[] p : printed) {
            int code = Integer.parseInt(p[0]);
            assertEquals(Float.parseFloat(p[1]), CodeMap.SIGNED.value(code), "code " + code);
            assertEquals(-Float.parseFloat(p[1]), CodeMap.SIGNED.value(254 - code), "code " + (254 - code));
        }
    }

    /** The search equals the rule as the Javadoc states it, on every value where the answer changes and around it. */
    @Test
    void codeIsTheNearestThroughTheFloat32MidpointTiesToEven() {
        Random random = new Random(29);
        for (CodeMap map : CodeMap.values()) {
            float[] v = map.table();
            List<Float> xs = new ArrayList<>(List.of(0f, -0f, 1f, -1f, 2f, -2f, Float.POSITIVE_INFINITY,
                    Float.NEGATIVE_INFINITY, Float.NaN, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MAX_VALUE, -Float.MAX_VALUE));
            for (int c = 0; c < 256; c++) addWithNeighbours(xs, v[c]);
            for (int c = 0; c < 255; c++) addWithNeighbours(xs, (v[c] + v[c + 1]) * 0.5f);
            for (int i = 0; i < 20_000; i++) xs.add(random.nextFloat() * 2 - 1);
            for (int i = 0; i < 20_000; i++) xs.add((float) (random.nextGaussian() * Math.pow(10, -random.nextInt(8))));
            for (float x : xs) assertEquals(statedRule(x, v), map.code(x), map + " code of " + x);
        }
    }

    @Test
    void tiesGoToTheEvenCode() {
        for (CodeMap map : CodeMap.values()) {
            for (int j = 0; j < 255; j++) {
                float midpoint = (map.value(j) + map.value(j + 1)) * 0.5f;
                assertTrue(map.value(j) < midpoint && midpoint < map.value(j + 1), map + " midpoint inside at " + j);
                assertEquals(j % 2 == 0 ? j : j + 1, map.code(midpoint), map + " tie between " + j + " and " + (j + 1));
                assertEquals(j, map.code(Math.nextDown(midpoint)), map + " below the midpoint of " + j);
                assertEquals(j + 1, map.code(Math.nextUp(midpoint)), map + " above the midpoint of " + j);
            }
        }
    }

    @Test
    void everyMapValueTimesAbsmaxQuantizesToItsOwnCode() {
        for (CodeMap map : CodeMap.values()) {
            for (float absmax : new float[] {1f, 0.37f, 3e38f, 1e-30f, 7.5e4f}) {
                for (int c = 0; c < 256; c++) {
                    float value = map.value(c) * absmax;
                    int code = BlockwiseQuantization.quantize(value, absmax, map);
                    assertEquals(c, code, map + " code " + c + " at absmax " + absmax);
                    assertEquals(value, BlockwiseQuantization.dequantize(code, absmax, map), map + " read back");
                }
            }
        }
    }

    /** |read back - v| <= half the gap of the map around v / absmax, times absmax (plus the float32 roundings). */
    @Test
    void errorOfABlockIsAtMostHalfTheGapAroundTheValue() {
        Random random = new Random(7);
        for (CodeMap map : CodeMap.values()) {
            float[] v = map.table();
            for (int trial = 0; trial < 200; trial++) {
                float scale = (float) Math.pow(10, random.nextInt(12) - 6);
                float[] block = new float[BlockwiseQuantization.BLOCK];
                for (int i = 0; i < block.length; i++) {
                    float g = (float) (random.nextGaussian() * scale);
                    block[i] = map == CodeMap.UNSIGNED ? g * g / scale : g;  // second moments are >= 0
                }
                byte[] codes = new byte[block.length];
                float absmax = BlockwiseQuantization.quantizeBlock(block, 0, block.length, map, codes, 0);
                float[] back = new float[block.length];
                BlockwiseQuantization.dequantizeBlock(codes, 0, block.length, absmax, map, back, 0);
                for (int i = 0; i < block.length; i++) {
                    float x = block[i] / absmax;
                    int j = bracket(x, v);
                    // Below the signed map's -0.99296875 the clamp to code 0 is the error.
                    double halfGap = j < 0 ? Math.abs(v[0] - (double) x) : (v[j + 1] - (double) v[j]) / 2;
                    double bound = (halfGap + Math.ulp(x)) * absmax + Math.ulp(back[i]);
                    assertTrue(Math.abs((double) back[i] - block[i]) <= bound,
                            map + ": " + block[i] + " read back as " + back[i] + " (bound " + bound + ")");
                }
            }
        }
    }

    @Test
    void allZeroBlockIsCodeOfZeroAndReadsBackAsPositiveZero() {
        for (CodeMap map : CodeMap.values()) {
            for (float zero : new float[] {0f, -0f}) {
                float[] block = new float[100];
                Arrays.fill(block, zero);
                byte[] codes = new byte[100];
                float absmax = BlockwiseQuantization.quantizeBlock(block, 0, 100, map, codes, 0);
                assertEquals(0, Float.floatToRawIntBits(absmax), map + " absmax of zeros " + zero);
                for (byte code : codes) assertEquals(0f, map.value(code & 0xFF), map + " code of 0");
                float[] back = new float[100];
                BlockwiseQuantization.dequantizeBlock(codes, 0, 100, absmax, map, back, 0);
                for (float b : back) assertEquals(0, Float.floatToRawIntBits(b), map + " reads back +0");
            }
            assertEquals(map.code(0f), BlockwiseQuantization.quantize(5f, 0f, map), "absmax 0 gives the code of 0 whatever the value");
        }
    }

    @Test
    void nanOrInfinityMakesTheAbsmaxNanAndTheBlockReadBackAsNan() {
        for (CodeMap map : CodeMap.values()) {
            for (float special : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                float[] block = {0.5f, -2f, special, 1e-3f, 0f};
                byte[] codes = new byte[block.length];
                float absmax = BlockwiseQuantization.quantizeBlock(block, 0, block.length, map, codes, 0);
                assertEquals(NAN_BITS, Float.floatToRawIntBits(absmax), map + " absmax with " + special);
                for (byte code : codes) assertEquals(0, code, map + " NaN normalizes to code 0");
                float[] back = new float[block.length];
                BlockwiseQuantization.dequantizeBlock(codes, 0, block.length, absmax, map, back, 0);
                for (float b : back) assertTrue(Float.isNaN(b), map + " reads back NaN with " + special);
            }
            assertEquals(0, BlockwiseQuantization.quantize(Float.NaN, 1f, map), "NaN value");
            assertEquals(255, BlockwiseQuantization.quantize(Float.POSITIVE_INFINITY, 1f, map), "+infinity value");
            assertEquals(0, BlockwiseQuantization.quantize(Float.NEGATIVE_INFINITY, 1f, map), "-infinity value");
        }
    }

    @Test
    void extremeMagnitudesStayFinite() {
        for (CodeMap map : CodeMap.values()) {
            boolean signed = map == CodeMap.SIGNED;
            // Subnormal, huge, and a block whose largest magnitude is negative (the signed map's -1 is -0.99296875).
            for (float[] block : new float[][] {{Float.MIN_VALUE * 3, Float.MIN_VALUE, 1e-42f, 0f},
                {Float.MAX_VALUE, 1e38f, -3e37f, 1f}, {-8f, 4f, 1f, -0.5f}}) {
                if (!signed) for (int i = 0; i < block.length; i++) block[i] = Math.abs(block[i]);
                byte[] codes = new byte[block.length];
                float absmax = BlockwiseQuantization.quantizeBlock(block, 0, block.length, map, codes, 0);
                float largest = 0;
                for (float b : block) largest = Math.max(largest, Math.abs(b));
                assertEquals(largest, absmax);
                float[] back = new float[block.length];
                BlockwiseQuantization.dequantizeBlock(codes, 0, block.length, absmax, map, back, 0);
                for (int i = 0; i < block.length; i++) {
                    assertTrue(Float.isFinite(back[i]), map + " " + block[i] + " read back as " + back[i]);
                    float x = block[i] / absmax;
                    assertEquals(map.code(x), codes[i] & 0xFF, map + " code of " + block[i]);
                    if (x == 1f) assertEquals(absmax, back[i], "the largest positive element reads back exactly");
                    if (x == -1f) assertEquals(0, codes[i], "the largest negative element takes the smallest code");
                }
            }
        }
    }

    @Test
    void wholeTensorHelpersCutPartialLastBlocks() {
        int n = 3 * BlockwiseQuantization.BLOCK + 17;
        Random random = new Random(5);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float) random.nextGaussian() * (i < 3 * 256 ? 1f : 1e-3f);
        values[2] = 40f;  // one large element in the first block only
        byte[] codes = new byte[n];
        float[] absmax = new float[BlockwiseQuantization.blocks(n)];
        assertEquals(4, absmax.length);
        BlockwiseQuantization.quantizeBlocks(values, CodeMap.SIGNED, codes, absmax);
        for (int b = 0; b < 4; b++) {
            int first = b * 256, length = Math.min(256, n - first);
            assertEquals(BlockwiseQuantization.absmax(values, first, length), absmax[b], "block " + b);
            for (int i = first; i < first + length; i++) {
                assertEquals(BlockwiseQuantization.quantize(values[i], absmax[b], CodeMap.SIGNED), codes[i] & 0xFF, "element " + i);
            }
        }
        assertTrue(absmax[3] < 0.01f, "the partial block's absmax is its own");
        float[] back = new float[n];
        BlockwiseQuantization.dequantizeBlocks(codes, absmax, CodeMap.SIGNED, back);
        for (int i = 0; i < n; i++) {
            assertEquals(BlockwiseQuantization.dequantize(codes[i] & 0xFF, absmax[i / 256], CodeMap.SIGNED), back[i], "element " + i);
        }
    }

    @Test
    void badArgumentsAreRefusedWithTheValue() {
        float[] values = new float[300];
        byte[] codes = new byte[300];
        assertMessage("a block has 1..256 elements, got 257",
                () -> BlockwiseQuantization.quantizeBlock(values, 0, 257, CodeMap.SIGNED, codes, 0));
        assertMessage("a block has 1..256 elements, got 0",
                () -> BlockwiseQuantization.dequantizeBlock(codes, 0, 0, 1f, CodeMap.SIGNED, values, 0));
        assertMessage("code must be in 0..255, got 256", () -> BlockwiseQuantization.dequantize(256, 1f, CodeMap.SIGNED));
        assertMessage("codes must have one byte per element (300), got 299",
                () -> BlockwiseQuantization.quantizeBlocks(values, CodeMap.SIGNED, new byte[299], new float[2]));
        assertMessage("absmax must have one value per block of 256 (2 for 300 elements), got 1",
                () -> BlockwiseQuantization.dequantizeBlocks(codes, new float[1], CodeMap.SIGNED, values));
        assertThrows(IndexOutOfBoundsException.class,
                () -> BlockwiseQuantization.quantizeBlock(values, 200, 256, CodeMap.SIGNED, codes, 0));
    }

    /** The device header's constants are these. */
    @Test
    void deviceHeaderHasTheSameBlockAndCodeCount() throws IOException {
        String header = Files.readString(Path.of("kernels", "fusedopt_quant.cuh"));
        assertEquals(BlockwiseQuantization.BLOCK, define(header, "FO_QUANT_BLOCK"));
        assertEquals(BlockwiseQuantization.CODES, define(header, "FO_QUANT_CODES"));
    }

    /** The Javadoc's statement of the rule, written as directly as possible: a linear scan for the bracket. */
    private static int statedRule(float x, float[] v) {
        if (Float.isNaN(x) || x <= v[0]) return 0;
        if (x > v[255]) return 255;
        int j = bracket(x, v);
        float midpoint = (v[j] + v[j + 1]) * 0.5f;
        if (x > midpoint) return j + 1;
        if (x < midpoint) return j;
        return j % 2 == 0 ? j : j + 1;
    }

    /** j with x in (v[j], v[j + 1]], or -1 when x <= v[0] or x > v[255]. */
    private static int bracket(float x, float[] v) {
        for (int j = 0; j < 255; j++) if (v[j] < x && x <= v[j + 1]) return j;
        return -1;
    }

    private static void addWithNeighbours(List<Float> xs, float x) {
        xs.add(x);
        xs.add(Math.nextUp(x));
        xs.add(Math.nextDown(x));
    }

    private static Float[] box(float[] v) {
        Float[] boxed = new Float[v.length];
        for (int i = 0; i < v.length; i++) boxed[i] = v[i];
        return boxed;
    }

    private interface FloatTest {
        boolean test(float x);
    }

    private static long countWhere(float[] v, FloatTest test) {
        long count = 0;
        for (float x : v) if (test.test(x)) count++;
        return count;
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        assertEquals(expected, assertThrows(IllegalArgumentException.class, call).getMessage());
    }

    private static int define(String source, String name) {
        Matcher m = Pattern.compile("#define " + name + "\\s+(\\d+)").matcher(source);
        assertTrue(m.find(), name + " missing");
        return Integer.parseInt(m.group(1));
    }
}
