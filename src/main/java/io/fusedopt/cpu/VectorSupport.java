package io.fusedopt.cpu;

import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Whether {@link VectorKernels} can run in this JVM, decided once: the incubating module must be
 * resolved ({@code --add-modules jdk.incubator.vector}), its MemorySegment entry points must link
 * where the JDK has them (19 and later, for direct FloatBuffers), and a small AMSGrad Adam update
 * must equal the reference bit for bit with its operands in every memory kind the kernels will read
 * here, mixed in one update, and the bf16 conversions of the widening path ({@link VectorConversions})
 * must give {@link Conversions}' bits on every special case. Otherwise the fast backend runs {@link ReferenceKernels} on every core,
 * and {@link #reason()} says why.
 */
final class VectorSupport {
    private VectorSupport() {}

    /** Set to {@code false} to run the loop fallback although the Vector API works (tests, comparisons). */
    static final String PROPERTY = "fusedopt.cpu.vector";

    /** Why a direct FloatBuffer runs the loops on JDK 17 and 18. */
    static final String DIRECT_BUFFER_LOOPS = "the Vector API of JDK 17 and 18 reads ByteBuffers, and a FloatBuffer"
            + " exposes none; JDK 19 and later read it as a MemorySegment";

    private static final boolean AVAILABLE;
    private static final boolean DIRECT_BUFFERS;
    private static final String REASON;

    static {
        String reason;
        boolean available = false, directBuffers = false;
        if (!Boolean.parseBoolean(System.getProperty(PROPERTY, "true"))) {
            reason = "Vector API turned off by -D" + PROPERTY + "=false";
        } else if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            reason = "Vector API module not resolved: start the JVM with --add-modules jdk.incubator.vector";
        } else {
            try {
                directBuffers = VectorKernels.directFloatBuffersSupported();
                reason = selfTest(directBuffers);
                if (reason == null) reason = conversionSelfTest();
                available = reason == null;
                if (available) {
                    reason = "Vector API, " + VectorKernels.SPECIES.vectorBitSize() + "-bit vectors"
                            + (directBuffers ? ", " + VectorKernels.NATIVE_ACCESS + " access" : "")
                            + "; vectors for " + MemoryKind.ALLOCATED + ", "
                            + MemoryKind.HEAP_ARRAY + (directBuffers ? ", " + MemoryKind.DIRECT_BUFFER
                            : "; loops for a " + MemoryKind.DIRECT_BUFFER + " (" + DIRECT_BUFFER_LOOPS + ")");
                }
            } catch (LinkageError | RuntimeException e) {
                Throwable cause = e instanceof ExceptionInInitializerError && e.getCause() != null ? e.getCause() : e;
                reason = "Vector API unusable in this JDK (" + Runtime.version() + "): " + cause;
            }
        }
        AVAILABLE = available;
        DIRECT_BUFFERS = available && directBuffers;
        REASON = reason;
    }

    static boolean available() {
        return AVAILABLE;
    }

    /** Whether the vector kernels read memory of {@code kind} in place here. */
    static boolean supports(MemoryKind kind) {
        return switch (kind) {
            case ALLOCATED, HEAP_ARRAY -> AVAILABLE;
            case DIRECT_BUFFER -> DIRECT_BUFFERS;
            case OTHER_VIEW -> false;
        };
    }

    /** Why memory of {@code kind} runs the loops, for a kind {@link #supports} refuses. */
    static String whyLoops(MemoryKind kind) {
        if (!AVAILABLE) return REASON;
        return kind == MemoryKind.DIRECT_BUFFER ? DIRECT_BUFFER_LOOPS
                : "the vector kernels read native-order memory or float[] only";
    }

    /** What the fast backend vectorizes with and which memory, or why it does not. */
    static String reason() {
        return REASON;
    }

    /**
     * Whether 8-bit states are quantized with {@link VectorQuantization} here: the Vector API works,
     * its vectors are wide enough ({@link VectorQuantization#SUPPORTED}) and {@link #quantizationSelfTest}
     * passes; else {@link QuantizationTable}'s loops, the same codes. Decided at the first call (a step
     * program with 8-bit states), not with {@link #available()}.
     */
    static boolean quantizes() {
        return QuantizationCheck.REASON == null;
    }

    /** Why 8-bit states take the loops, or null when {@link #quantizes()}. */
    static String whyQuantizationLoops() {
        return QuantizationCheck.REASON;
    }

    private static final class QuantizationCheck {
        static final String REASON = decide();

        private static String decide() {
            if (!AVAILABLE) return REASON;
            try {
                if (!VectorQuantization.SUPPORTED) {
                    return VectorKernels.SPECIES.vectorBitSize() + "-bit vectors have no byte vector with a lane per float lane";
                }
                return quantizationSelfTest();
            } catch (LinkageError | RuntimeException e) {
                return "Vector API quantization unusable in this JDK (" + Runtime.version() + "): " + e;
            }
        }
    }

    /**
     * Null when {@link VectorQuantization} gives {@link QuantizationTable}'s absmax and codes for both maps: a whole block and a partial one of 37 elements (whole
     * vectors and a tail) of signed zeros, subnormals, values at and beside midpoints and of many
     * binades, then the same with a NaN in the partial block.
     */
    private static String quantizationSelfTest() {
        int n = io.fusedopt.internal.BlockwiseQuantization.BLOCK + 37;
        VectorQuantization vectors = new VectorQuantization();
        for (io.fusedopt.internal.BlockwiseQuantization.CodeMap map : io.fusedopt.internal.BlockwiseQuantization.CodeMap.values()) {
            QuantizationTable table = QuantizationTable.of(map);
            float[] values = new float[n];
            for (int i = 0; i < n; i++) {
                int code = (7 * i) % 255;
                float midpoint = (map.value(code) + map.value(code + 1)) * 0.5f;
                values[i] = switch (i % 4) {
                    case 0 -> midpoint;
                    case 1 -> Math.nextUp(midpoint);
                    case 2 -> (float) Math.sin(3.1 * i) * (float) Math.pow(10, -(i % 8));
                    default -> i % 8 == 3 ? -0f : Float.MIN_VALUE * i;
                };
            }
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 1) values[n - 5] = Float.NaN;
                byte[] expectedCodes = new byte[n], codes = new byte[n];
                float[] expectedAbsmax = new float[2], absmax = new float[2];
                table.quantizeBlocks(values, 0, n, expectedCodes, 0, expectedAbsmax, 0);
                vectors.quantizeBlocks(table, values, 0, n, codes, 0, absmax, 0);
                if (!sameBits(absmax, expectedAbsmax) || !java.util.Arrays.equals(codes, expectedCodes)) {
                    return "Vector API quantization differs from the table (" + map + (pass == 1 ? ", a NaN in the block)" : ")");
                }
            }
        }
        return null;
    }

    private static boolean sameBits(float[] a, float[] b) {
        for (int i = 0; i < a.length; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) return false;
        }
        return a.length == b.length;
    }

    /**
     * Null when AMSGrad Adam steps over 37 elements (whole vectors and a tail) equal the reference
     * bit for bit, else what differed. The operands are in each kind the kernels will meet, at
     * offsets (a heap FloatBuffer and a direct FloatBuffer sliced at position 3), and rotated so
     * that every operand position reads and writes every kind, mixed within one update.
     */
    private static String selfTest(boolean directBuffers) {
        int n = 37, offset = 3;
        List<MemoryKind> kinds = new ArrayList<>(List.of(MemoryKind.ALLOCATED, MemoryKind.HEAP_ARRAY));
        if (directBuffers) kinds.add(MemoryKind.DIRECT_BUFFER);
        float[] s = new float[StepScalars.SCALAR_STRIDE];
        io.fusedopt.Adam adam = io.fusedopt.Adam.builder().optAmsgrad(true).optWeightDecay(0.01).build();
        StepScalars.compute(adam, 3, s);
        UpdateKernel kernel = UpdatePlan.of(adam).kernel();
        int flags = KernelFlags.AMSGRAD | KernelFlags.L2_DECAY;
        for (int rotation = 0; rotation < kinds.size(); rotation++) {
            VectorOperand[] operands = new VectorOperand[5];
            FloatBuffer[] vectorFloats = new FloatBuffer[5];
            FloatBuffer[] reference = new FloatBuffer[5];
            for (int j = 0; j < 5; j++) {
                MemoryKind kind = kinds.get((j + rotation) % kinds.size());
                switch (kind) {
                    case ALLOCATED -> {
                        float[] block = new float[n];
                        vectorFloats[j] = FloatBuffer.wrap(block);
                        operands[j] = VectorOperand.ofArray(block, 0);
                    }
                    case HEAP_ARRAY -> vectorFloats[j] = FloatBuffer.allocate(n + offset).position(offset).slice();
                    case DIRECT_BUFFER -> vectorFloats[j] = ByteBuffer.allocateDirect((n + offset) * Float.BYTES)
                            .order(ByteOrder.nativeOrder()).asFloatBuffer().position(offset).slice();
                    case OTHER_VIEW -> throw new IllegalStateException("never vectorized");
                }
                if (operands[j] == null) operands[j] = VectorKernels.ofWrapped(vectorFloats[j]);
                reference[j] = FloatBuffer.allocate(n);
                for (int i = 0; i < n; i++) {
                    float x = (float) Math.sin(1.7 * i + j) * (j == 3 || j == 4 ? 0.1f : 1f);
                    vectorFloats[j].put(i, j >= 3 ? x * x : x);
                    reference[j].put(i, j >= 3 ? x * x : x);
                }
            }
            VectorKernels.run(kernel, operands, vectorFloats, 0, n, s, flags);
            ReferenceKernels.run(kernel, reference, 0, n, s, flags);
            for (int j = 0; j < 5; j++) {
                for (int i = 0; i < n; i++) {
                    if (Float.floatToIntBits(vectorFloats[j].get(i)) != Float.floatToIntBits(reference[j].get(i))) {
                        return "Vector API result differs from the reference (operand " + j + " in "
                                + kinds.get((j + rotation) % kinds.size()) + " memory, element " + i + ")";
                    }
                }
            }
        }
        return null;
    }

    /**
     * Null when {@link VectorConversions} rounds and widens bf16 exactly as {@link Conversions} does:
     * NaNs of both signs and payloads, infinities, the largest finite values (which round to
     * infinity), ties to even both ways, subnormals, signed zeros, then ordinary values; 37 of them,
     * so the vectors and the scalar tail both run.
     */
    private static String conversionSelfTest() {
        int[] special = {0x7FC00000, 0xFFC00001, 0x7F800001, 0xFF800000, 0x7F800000, 0x7F7FFFFF, 0xFF7F8000, 0x3F808000,
            0x3F818000, 0x3F80FFFF, 0x00000001, 0x80008000, 0x00018000, 0x00000000, 0x80000000, 0x7F7F7FFF};
        int n = 37;
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = i < special.length ? Float.intBitsToFloat(special[i]) : (float) Math.sin(3.1 * i) * (float) Math.pow(7, i % 9 - 4);
        }
        short[] narrowed = new short[n];
        VectorConversions.narrowBf16(values, 0, narrowed, 0, n);
        float[] widened = new float[n];
        VectorConversions.widenBf16(narrowed, 0, widened, 0, n);
        for (int i = 0; i < n; i++) {
            short expected = Conversions.floatToBf16(values[i]);
            if (narrowed[i] != expected || Float.floatToRawIntBits(widened[i]) != Float.floatToRawIntBits(Conversions.bf16ToFloat(expected))) {
                return "Vector API bf16 conversion differs from the reference for float bits 0x"
                        + Integer.toHexString(Float.floatToRawIntBits(values[i]));
            }
        }
        return null;
    }
}
