package io.fusedopt.internal;

import io.fusedopt.StateKind;
import java.util.Arrays;
import java.util.Objects;

/**
 * The 8-bit blockwise quantization of optimizer states, as bitsandbytes (&gt;= 0.44) does it for its
 * 8-bit optimizers: a tensor is cut into blocks of {@link #BLOCK} elements, each block keeps one
 * float32 scale, its absmax, and one byte per element, the index of a value of a 256-entry code map.
 * {@code kernels/fusedopt_quant.cuh} is the same rule for the device; the two agree bit for bit.
 *
 * <h2>The code maps</h2>
 * {@link CodeMap#SIGNED} is bitsandbytes' {@code create_dynamic_map(signed=True)} (its optimizers'
 * {@code name2qmap["dynamic"]}, used for first moments), {@link CodeMap#UNSIGNED} is
 * {@code create_dynamic_map(signed=False)} ({@code "udynamic"}, for second moments). Both are 256
 * distinct float32 values in ascending order, made by transcribing {@code create_dynamic_map} with
 * PyTorch's float32 arithmetic: for exponent {@code i = 0 .. 6}, {@code n = 2^i + 1} (signed) or
 * {@code 2^(i+1) + 1} (unsigned) boundaries {@code b = torch.linspace(0.1, 1, n)} in float32
 * ({@code step = (1f - 0.1f) / (n - 1)}, then {@code b[j] = fma(step, j, 0.1f)} for
 * {@code j < n / 2} and {@code b[j] = fma(-step, n - 1 - j, 1f)} above, each rounded once), the
 * means {@code (b[j] + b[j+1]) / 2} in float32, each multiplied in float32 by {@code 10^(i-6)}
 * rounded to float32 (the signed map also takes each negated); then {@code 0} and {@code 1}, and
 * the 256 values sorted. The signed map runs from -0.99296875 to 1 (it has no -1: 127 negative
 * values, 0 at code 127, 128 positive ones); the unsigned one from 0 (code 0) to 1.
 *
 * <p>The fused multiply-adds are what PyTorch 2 computes on x86-64 (its CPU {@code linspace} is
 * compiled with contraction): these values equal, all 256, a table printed from bitsandbytes on
 * such a machine (the {@code INT8_CODE} table of the mistral.rs project), whereas computing
 * without the fma differs from it in 21 of the 128 positive values, and computing in double and
 * rounding once in 36. bitsandbytes' map is thus not one constant: PyTorch 1.13 (Debian's build)
 * gives maps that differ from these by 1 or 2 ulps in 42 to 51 values, and differently with and
 * without AVX-512. A state stored by bitsandbytes carries its own map ({@code qmap1},
 * {@code qmap2}); values decoded with it are exact, whichever map it is.
 *
 * <h2>The rule</h2>
 * <ul>
 * <li><b>absmax</b> of a block: the largest {@code |v|} of its elements (exact, so independent of
 * the order), or NaN when an element is NaN or infinite: such a block cannot be represented (every
 * finite element would become 0 relative to an infinite scale), and a NaN scale makes every element
 * read back as NaN instead of as a wrong number. The NaN is {@link Float#NaN} (bits 0x7fc00000). A
 * partial last block takes the absmax of its own elements only.
 * <li><b>quantize</b>({@code value, absmax}): the normalized value is {@code x = value / absmax},
 * one float32 division (IEEE, round to nearest even; bitsandbytes uses an approximate
 * {@code __fdividef}, so its codes can differ where {@code x} is within an ulp or two of a
 * midpoint); when {@code absmax == 0} (an all-zero block), {@code x = +0}, whatever the value.
 * The code is that of the nearest map value: for {@code x} in {@code (map[j], map[j+1]]}, with the
 * float32 midpoint {@code m = (map[j] + map[j+1]) * 0.5f}, the code is {@code j + 1} when
 * {@code x > m}, {@code j} when {@code x < m}, and on a tie ({@code x == m}) the even one of the two.
 * {@code x <= map[0]} (including -infinity) gives 0, {@code x > map[255]} (including +infinity)
 * gives 255, NaN gives 0. Every map value quantizes to its own code, so 0 goes to the code of 0.
 * This is bitsandbytes' {@code quantize_2D}/{@code dQuantize} binary search exactly (seven halvings
 * from code 127 end on an even code, whose neighbour on the value's side is compared through the
 * midpoint; a tie stays on the even code), which {@link CodeMap#code} performs the same way.
 * "Nearest" is judged by the rounded midpoint: a value within half an ulp of the exact midpoint
 * may take the farther of the two codes.
 * <li><b>dequantize</b>({@code code, absmax}) {@code = map[code] * absmax}, one float32 multiply.
 * An all-zero block reads back as +0 everywhere, a block of absmax NaN as NaN.
 * </ul>
 * Not part of the rule: bitsandbytes' optimizer kernels move a negative first moment that rounds to
 * the code of 0 one code further, to the smallest negative value ({@code -5.5e-7 * absmax}); a
 * positive one stays at 0. Whether an optimizer does that is its own choice.
 */
public final class BlockwiseQuantization {
    private BlockwiseQuantization() {}

    /** Elements per block (bitsandbytes' {@code BLOCKSIZE_1STATE} and {@code BLOCKSIZE_2STATE}). */
    public static final int BLOCK = io.fusedopt.StateQuantization.BLOCK;
    /** Values per code map: one per byte value. */
    public static final int CODES = 256;

    /**
     * The map a quantized state of {@code kind} uses: {@link CodeMap#SIGNED} for states that
     * change sign (first moments, momentum buffers, AdEMAMix's two EMAs, RMSProp's gradient
     * average), {@link CodeMap#UNSIGNED} for those never negative (second moments, squared
     * averages, Adagrad's sum), whose 256 codes then all serve non-negative values (bitsandbytes
     * uses the signed map for every single-state optimizer; the unsigned one halves the relative
     * spacing there). Null for a state no 8-bit optimizer keeps.
     */
    public static CodeMap mapFor(StateKind kind) {
        return switch (kind) {
            case EXP_AVG, MOMENTUM_BUFFER, VELOCITY, GRAD_AVG, M1, M2 -> CodeMap.SIGNED;
            case EXP_AVG_SQ, MAX_EXP_AVG_SQ, SQUARE_AVG, SUM, NU -> CodeMap.UNSIGNED;
            default -> null;
        };
    }

    /** The two code maps of bitsandbytes' 8-bit optimizers. */
    public enum CodeMap {
        /** {@code create_dynamic_map(signed=True)}: bitsandbytes' {@code "dynamic"}, for first moments. */
        SIGNED("dynamic", true),
        /** {@code create_dynamic_map(signed=False)}: bitsandbytes' {@code "udynamic"}, for second moments. */
        UNSIGNED("udynamic", false);

        private final String bitsandbytesName;
        private final float[] values;

        CodeMap(String bitsandbytesName, boolean signed) {
            this.bitsandbytesName = bitsandbytesName;
            this.values = dynamicMap(signed);
        }

        /** The name bitsandbytes gives this map ({@code name2qmap}'s key). */
        public String bitsandbytesName() {
            return bitsandbytesName;
        }

        /** The value of {@code code} (0 to 255). */
        public float value(int code) {
            return values[code];
        }

        /** A copy of the 256 values, ascending (for a device table or a checkpoint). */
        public float[] table() {
            return values.clone();
        }

        /**
         * The code of the normalized value {@code x} (the class's rule: nearest through the float32
         * midpoint, ties to the even code, NaN to 0), by bitsandbytes' binary search.
         */
        public int code(float x) {
            int pivot = CODES / 2 - 1;
            int below = 0;          // the last pivot x was above (its value is below x)
            int above = CODES - 1;  // the last pivot x was at or below
            for (int halving = CODES / 4; halving > 0; halving >>= 1) {
                if (x > values[pivot]) {
                    below = pivot;
                    pivot += halving;
                } else {
                    above = pivot;
                    pivot -= halving;
                }
            }
            float value = values[pivot];  // pivot is even; below = pivot - 1 or above = pivot + 1 brackets x with it
            if (x > value) return x > (values[above] + value) * 0.5f ? above : pivot;
            return x < (values[below] + value) * 0.5f ? below : pivot;
        }
    }

    /**
     * The absmax of {@code v[from .. from + n)}: the largest {@code |v|}, +0 for an all-zero block,
     * NaN when an element is NaN or infinite.
     */
    public static float absmax(float[] v, int from, int n) {
        Objects.checkFromIndexSize(from, n, v.length);
        float max = 0f;
        for (int i = from; i < from + n; i++) {
            float magnitude = Math.abs(v[i]);
            if (!(magnitude <= Float.MAX_VALUE)) return Float.NaN;
            if (magnitude > max) max = magnitude;
        }
        return max;
    }

    /** The code (0 to 255) of {@code value} in a block of absmax {@code absmax}: {@code map.code(value / absmax)}, the code of 0 when absmax is 0. */
    public static int quantize(float value, float absmax, CodeMap map) {
        return map.code(absmax == 0f ? 0f : value / absmax);
    }

    /** {@code map[code] * absmax} in float32. */
    public static float dequantize(int code, float absmax, CodeMap map) {
        if (code < 0 || code >= CODES) throw new IllegalArgumentException("code must be in 0..255, got " + code);
        return map.value(code) * absmax;
    }

    /**
     * Quantizes one block, {@code values[from .. from + n)} with {@code n} in 1..{@link #BLOCK},
     * into {@code codes[codesFrom .. codesFrom + n)}; returns the block's absmax.
     */
    public static float quantizeBlock(float[] values, int from, int n, CodeMap map, byte[] codes, int codesFrom) {
        checkBlockLength(n);
        Objects.checkFromIndexSize(codesFrom, n, codes.length);
        float absmax = absmax(values, from, n);
        for (int i = 0; i < n; i++) codes[codesFrom + i] = (byte) quantize(values[from + i], absmax, map);
        return absmax;
    }

    /**
     * Dequantizes one block, {@code codes[codesFrom .. codesFrom + n)} with {@code n} in
     * 1..{@link #BLOCK}, into {@code out[outFrom .. outFrom + n)}.
     */
    public static void dequantizeBlock(byte[] codes, int codesFrom, int n, float absmax, CodeMap map, float[] out, int outFrom) {
        checkBlockLength(n);
        Objects.checkFromIndexSize(codesFrom, n, codes.length);
        Objects.checkFromIndexSize(outFrom, n, out.length);
        for (int i = 0; i < n; i++) out[outFrom + i] = map.value(codes[codesFrom + i] & 0xFF) * absmax;
    }

    /** The number of blocks of a tensor of {@code n} elements (the last one may be partial). */
    public static int blocks(int n) {
        if (n < 0) throw new IllegalArgumentException("n must be >= 0, got " + n);
        return (n + BLOCK - 1) / BLOCK;
    }

    /** Quantizes a whole tensor, {@code values}, into {@code codes} (as long) and {@code absmax} ({@link #blocks} long). */
    public static void quantizeBlocks(float[] values, CodeMap map, byte[] codes, float[] absmax) {
        checkTensorLengths(values.length, codes.length, absmax.length);
        for (int b = 0; b < absmax.length; b++) {
            int first = b * BLOCK;
            absmax[b] = quantizeBlock(values, first, Math.min(BLOCK, values.length - first), map, codes, first);
        }
    }

    /** Dequantizes a whole tensor: {@code codes} and its {@code absmax} ({@link #blocks} long) into {@code out} (as long as codes). */
    public static void dequantizeBlocks(byte[] codes, float[] absmax, CodeMap map, float[] out) {
        checkTensorLengths(out.length, codes.length, absmax.length);
        for (int b = 0; b < absmax.length; b++) {
            int first = b * BLOCK;
            dequantizeBlock(codes, first, Math.min(BLOCK, codes.length - first), absmax[b], map, out, first);
        }
    }

    private static void checkBlockLength(int n) {
        if (n < 1 || n > BLOCK) throw new IllegalArgumentException("a block has 1.." + BLOCK + " elements, got " + n);
    }

    private static void checkTensorLengths(int elements, int codes, int absmax) {
        if (codes != elements) {
            throw new IllegalArgumentException("codes must have one byte per element (" + elements + "), got " + codes);
        }
        if (absmax != blocks(elements)) {
            throw new IllegalArgumentException("absmax must have one value per block of " + BLOCK + " (" + blocks(elements)
                    + " for " + elements + " elements), got " + absmax);
        }
    }

    /** bitsandbytes' {@code create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)} in PyTorch's float32 (see the class). */
    private static float[] dynamicMap(boolean signed) {
        float[] map = new float[CODES];
        int k = 0;
        for (int i = 0; i < 7; i++) {
            int boundaryCount = signed ? (1 << i) + 1 : (1 << (i + 1)) + 1;
            float[] boundaries = torchLinspace(0.1f, 1f, boundaryCount);
            // Python's 10 ** (i - 6) is a double; PyTorch multiplies a float32 tensor by it as float32.
            float scale = (float) Double.parseDouble("1e" + (i - 6));
            for (int j = 0; j + 1 < boundaryCount; j++) {
                float mean = (boundaries[j] + boundaries[j + 1]) / 2f;
                map[k++] = scale * mean;
                if (signed) map[k++] = -(scale * mean);
            }
        }
        map[k++] = 0f;
        map[k++] = 1f;
        if (k != CODES) throw new AssertionError("create_dynamic_map made " + k + " values");
        Arrays.sort(map);
        return map;
    }

    /**
     * {@code torch.linspace(start, end, steps, dtype=float32)} on the CPU: the first half from the
     * start, the second from the end (so both ends are exact), each value one fused multiply-add.
     */
    private static float[] torchLinspace(float start, float end, int steps) {
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        float[] out = new float[steps];
        for (int j = 0; j < steps; j++) {
            out[j] = j < halfway ? Math.fma(step, (float) j, start) : Math.fma(-step, (float) (steps - 1 - j), end);
        }
        return out;
    }
}
