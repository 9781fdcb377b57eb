package io.fusedopt.cpu;

import io.fusedopt.internal.BlockwiseQuantization;
import java.util.Objects;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link QuantizationTable}'s quantization in SIMD form, bit for bit the same: the absmax as an
 * integer maximum of the magnitude bits, the division {@code v / absmax} lane by lane (one IEEE
 * float32 division each, as the rule says), the table lookup as a gather of the entries the
 * quotients' top bits select, then the threshold comparison. The elements after the last whole
 * vector take the table's scalar path. The gathers read their indices from an array in JDK 17's
 * Vector API, so each instance keeps one vector's worth of them: one instance per thread.
 *
 * <p>Dequantization stays {@link QuantizationTable}'s loop: a gather of the map values, widened
 * codes as its indices, was slower than it (0.34 against 0.26 ns per element on an AVX-512
 * machine, JDK 17 and 25). The quantizing gather is this code's cost too: about 0.3 of its
 * 0.57 ns per element (QuantizationBenchmark); the division and the absmax are a tenth of it.
 *
 * <p>Load only after {@link VectorSupport} said the Vector API works here and {@link #SUPPORTED}:
 * a vector of bytes has as many lanes as a float vector, and the smallest byte vector is 64 bits,
 * so float vectors narrower than 256 bits (SSE, NEON) take {@link QuantizationTable}'s loops.
 */
final class VectorQuantization {
    private static final VectorSpecies<Float> FLOATS = VectorKernels.SPECIES;
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    private static final int LANES = FLOATS.length();
    private static final int BLOCK = BlockwiseQuantization.BLOCK;
    /** Whether a byte vector can have one lane per float lane here. */
    static final boolean SUPPORTED = FLOATS.vectorBitSize() >= 256;
    private static final VectorSpecies<Byte> BYTES =
            SUPPORTED ? VectorSpecies.of(byte.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 4)) : null;

    /** One vector's gather indices (JDK 17's gathers take them from an array). */
    private final int[] indices = new int[LANES];

    /** {@link QuantizationTable#absmax}. */
    static float absmax(float[] v, int from, int n) {
        Objects.checkFromIndexSize(from, n, v.length);
        int k = 0;
        int max = 0;
        int end = FLOATS.loopBound(n);
        if (end > 0) {
            IntVector maxBits = IntVector.zero(INTS);
            for (; k < end; k += LANES) {
                maxBits = maxBits.max(FloatVector.fromArray(FLOATS, v, from + k).reinterpretAsInts().and(0x7FFFFFFF));
            }
            max = maxBits.reduceLanes(VectorOperators.MAX);
        }
        for (; k < n; k++) max = Math.max(max, Float.floatToRawIntBits(v[from + k]) & 0x7FFFFFFF);
        return QuantizationTable.magnitudeOrNaN(max);
    }

    /**
     * {@link QuantizationTable#quantizeBlocks}: {@code values[from .. from + n)}, whole blocks but
     * the last, into {@code codes[codesFrom ...]} and {@code absmax[absmaxFrom ...]}.
     *
     * <p>A whole tile per call, not a block: C2 then compiles this loop as a method of its own
     * (it is too large to inline), with the inlining budget the Vector API needs to become
     * vector instructions. Inlined into a large caller, JDK 17's C2 stopped short of some of the
     * Vector API's intrinsics and boxed every vector (12 bytes allocated per element, 10 to 100
     * times slower, in QuantizationBenchmark).
     */
    void quantizeBlocks(QuantizationTable table, float[] values, int from, int n, byte[] codes, int codesFrom,
                        float[] absmax, int absmaxFrom) {
        Objects.checkFromIndexSize(from, n, values.length);
        Objects.checkFromIndexSize(codesFrom, n, codes.length);
        Objects.checkFromIndexSize(absmaxFrom, BlockwiseQuantization.blocks(n), absmax.length);
        int[] entries = table.entries();
        for (int done = 0, b = absmaxFrom; done < n; done += BLOCK, b++) {
            int first = from + done, firstCode = codesFrom + done, length = Math.min(BLOCK, n - done);
            float scale = absmax(values, first, length);
            absmax[b] = scale;
            if (table.fillsOneCode(scale, codes, firstCode, length)) continue;
            FloatVector divisor = FloatVector.broadcast(FLOATS, scale);
            int k = 0;
            for (int end = FLOATS.loopBound(length); k < end; k += LANES) {
                IntVector bits = FloatVector.fromArray(FLOATS, values, first + k).div(divisor).reinterpretAsInts();
                bits.lanewise(VectorOperators.LSHR, QuantizationTable.LOW_BITS).intoArray(indices, 0);
                IntVector entry = IntVector.fromArray(INTS, entries, 0, indices, 0);
                VectorMask<Integer> fromThreshold = bits.and(QuantizationTable.LOW_MASK)
                        .compare(VectorOperators.GE, entry.lanewise(VectorOperators.LSHR, 16));
                IntVector code = entry.blend(entry.lanewise(VectorOperators.LSHR, 8), fromThreshold).and(0xFF);
                code.convertShape(VectorOperators.I2B, BYTES, 0).reinterpretAsBytes().intoArray(codes, firstCode + k);
            }
            for (; k < length; k++) codes[firstCode + k] = (byte) table.code(values[first + k] / scale);
        }
    }
}
