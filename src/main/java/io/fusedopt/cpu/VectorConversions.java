package io.fusedopt.cpu;

import io.fusedopt.internal.Conversions;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The widening path's per-element work in SIMD form, bit for bit {@link Conversions}' bf16 rules and
 * {@code StepControl.prepareGrad}'s multiplications: bf16 to float32 (the bits shifted into the high
 * half), float32 to bf16 (round to nearest, ties to even, every NaN to {@link Conversions#CANONICAL_NAN}),
 * and a gradient unscaled and clipped in place. The elements after the last whole vector run the
 * scalar rules. Heap arrays only (the backend's blocks and scratch). Load only after
 * {@link VectorSupport} said the Vector API works here; its self-test covers these too.
 */
final class VectorConversions {
    private VectorConversions() {}

    private static final VectorSpecies<Float> FLOATS = VectorKernels.SPECIES;
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());
    /** As many short lanes as float lanes: one bf16 vector per float vector. */
    private static final VectorSpecies<Short> SHORTS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));

    /** {@code to[toOffset + k] = bf16ToFloat(from[fromOffset + k])} for k in [0, n). */
    static void widenBf16(short[] from, int fromOffset, float[] to, int toOffset, int n) {
        int k = 0;
        for (int end = FLOATS.loopBound(n); k < end; k += FLOATS.length()) {
            IntVector bits = (IntVector) ShortVector.fromArray(SHORTS, from, fromOffset + k).convertShape(VectorOperators.S2I, INTS, 0);
            bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(to, toOffset + k);
        }
        for (; k < n; k++) to[toOffset + k] = Conversions.bf16ToFloat(from[fromOffset + k]);
    }

    /** {@code to[toOffset + k] = floatToBf16(from[fromOffset + k])} for k in [0, n). */
    static void narrowBf16(float[] from, int fromOffset, short[] to, int toOffset, int n) {
        IntVector canonicalNan = IntVector.broadcast(INTS, Conversions.CANONICAL_NAN);
        int k = 0;
        for (int end = FLOATS.loopBound(n); k < end; k += FLOATS.length()) {
            IntVector bits = FloatVector.fromArray(FLOATS, from, fromOffset + k).reinterpretAsInts();
            VectorMask<Integer> nan = bits.and(0x7FFFFFFF).compare(VectorOperators.GT, 0x7F800000);
            IntVector lsb = bits.lanewise(VectorOperators.LSHR, 16).and(1);
            IntVector rounded = bits.add(0x7FFF).add(lsb).lanewise(VectorOperators.LSHR, 16).blend(canonicalNan, nan);
            ((ShortVector) rounded.convertShape(VectorOperators.I2S, SHORTS, 0)).intoArray(to, toOffset + k);
        }
        for (; k < n; k++) to[toOffset + k] = Conversions.floatToBf16(from[fromOffset + k]);
    }

    /**
     * {@code g = g * first}, then {@code g = g * second} where asked, for [from, from + n): the
     * unscale and the clip of {@code StepControl.prepareGrad}, each a correctly rounded product.
     */
    static void scale(float[] g, int from, int n, boolean unscale, float first, boolean clip, float second) {
        int k = from, to = from + n;
        for (int end = from + FLOATS.loopBound(n); k < end; k += FLOATS.length()) {
            FloatVector v = FloatVector.fromArray(FLOATS, g, k);
            if (unscale) v = v.mul(first);
            if (clip) v = v.mul(second);
            v.intoArray(g, k);
        }
        for (; k < to; k++) {
            float x = g[k];
            if (unscale) x = x * first;
            if (clip) x = x * second;
            g[k] = x;
        }
    }
}
