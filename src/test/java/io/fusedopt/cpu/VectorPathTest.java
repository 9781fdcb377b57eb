package io.fusedopt.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.Parameter;
import io.fusedopt.Sgd;
import io.fusedopt.StateKind;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cli.VariantCatalog;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.FactoredKernel;
import io.fusedopt.internal.UpdatePlan;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The vector kernels run on every memory kind this JDK can read with vectors, and equal the
 * reference there bit for bit: the backend's own memory, a wrapped float[], heap FloatBuffers at an
 * offset (a position, and a slice whose array offset is not 0), direct FloatBuffers at an offset
 * (vectors from JDK 19 on, the loops before), and mixes of these in one update (the caller's param
 * and grad of different kinds beside the backend's state). Every variant of every kernel, on lengths
 * that leave a tail after the last vector (37, 1023) and one over several chunks (2 * 65536 + 13).
 * Which kernels ran is asserted from {@code deviceDescription()}, the line users see.
 *
 * <p>Needs {@code --add-modules jdk.incubator.vector} (the default test execution has it); run on
 * JDK 17 and on JDK 25, the two access paths (ByteBuffer and MemorySegment).
 */
class VectorPathTest {
    private static final int[] LENGTHS = {37, 1023, 2 * 65536 + 13};
    private static final int STEPS = 3;
    private static final int JDK = Runtime.version().feature();
    /** From JDK 19 (JEP 426) the Vector API reads memory segments, and a direct FloatBuffer is one. */
    private static final boolean DIRECT_VECTORIZED = JDK >= 19;

    /** The reference's params and states per variant: the same inputs for every memory pair. */
    private static final Map<String, List<float[]>> REFERENCE = new java.util.concurrent.ConcurrentHashMap<>();

    /** How the caller's param or grad is held; the state is always the backend's own memory. */
    enum Memory {
        ALLOCATED(MemoryKind.ALLOCATED),
        FLOAT_ARRAY(MemoryKind.HEAP_ARRAY),
        /** A heap FloatBuffer from position 3. */
        HEAP_BUFFER_AT_POSITION(MemoryKind.HEAP_ARRAY),
        /** A slice of a heap FloatBuffer: array offset 5, position 0. */
        HEAP_SLICE(MemoryKind.HEAP_ARRAY),
        /** A native-order direct FloatBuffer from position 3 (its address is not vector-aligned). */
        DIRECT_AT_POSITION(MemoryKind.DIRECT_BUFFER),
        /** A slice of a native-order direct FloatBuffer at element 1. */
        DIRECT_SLICE(MemoryKind.DIRECT_BUFFER),
        /** A big-endian direct FloatBuffer: read by the loops on every JDK. */
        BIG_ENDIAN_DIRECT(MemoryKind.OTHER_VIEW);

        final MemoryKind kind;

        Memory(MemoryKind kind) {
            this.kind = kind;
        }

        /** Whether the vectors read this memory in place on this JDK. */
        boolean vectorized() {
            return kind == MemoryKind.ALLOCATED || kind == MemoryKind.HEAP_ARRAY
                    || (kind == MemoryKind.DIRECT_BUFFER && DIRECT_VECTORIZED);
        }

        TensorBuffer hold(DeviceOptimizer opt, float[] values) {
            int n = values.length;
            TensorBuffer t = switch (this) {
                case ALLOCATED -> opt.allocate(n);
                case FLOAT_ARRAY -> opt.wrapHost(new float[n]);
                case HEAP_BUFFER_AT_POSITION -> opt.wrapHost(FloatBuffer.wrap(new float[n + 7]).position(3).limit(3 + n));
                case HEAP_SLICE -> opt.wrapHost(FloatBuffer.wrap(new float[n + 5], 5, n).slice());
                case DIRECT_AT_POSITION -> opt.wrapHost(direct(n + 3, ByteOrder.nativeOrder()).position(3));
                case DIRECT_SLICE -> opt.wrapHost(direct(n + 4, ByteOrder.nativeOrder()).position(1).limit(1 + n).slice());
                case BIG_ENDIAN_DIRECT -> opt.wrapHost(direct(n, ByteOrder.BIG_ENDIAN));
            };
            t.copyFrom(values);
            return t;
        }

        private static FloatBuffer direct(int n, ByteOrder order) {
            return ByteBuffer.allocateDirect(n * Float.BYTES).order(order).asFloatBuffer();
        }
    }

    /** The param's and the grad's memory; a pair of different kinds mixes them in one update. */
    static Stream<Arguments> memoryPairs() {
        Memory[][] pairs = {
            {Memory.ALLOCATED, Memory.ALLOCATED},
            {Memory.FLOAT_ARRAY, Memory.FLOAT_ARRAY},
            {Memory.HEAP_BUFFER_AT_POSITION, Memory.HEAP_SLICE},
            {Memory.DIRECT_AT_POSITION, Memory.DIRECT_SLICE},
            {Memory.FLOAT_ARRAY, Memory.ALLOCATED},
            {Memory.DIRECT_AT_POSITION, Memory.FLOAT_ARRAY},
            {Memory.HEAP_SLICE, Memory.DIRECT_SLICE},
            {Memory.BIG_ENDIAN_DIRECT, Memory.FLOAT_ARRAY},
        };
        return Stream.of(pairs).map(p -> Arguments.of(p[0], p[1]));
    }

    @Test
    void theVectorApiRunsWithThisJdksAccessPath() {
        assertTrue(VectorSupport.available(), "the default test execution adds jdk.incubator.vector: " + VectorSupport.reason());
        String reason = FastCpuEngine.vectorSupport();
        if (JDK >= 19) assertTrue(reason.contains("MemorySegment access"), reason);
        else assertFalse(reason.contains("access"), reason); // JDK 17 and 18 read arrays only
        assertEquals(DIRECT_VECTORIZED, VectorSupport.supports(MemoryKind.DIRECT_BUFFER), reason);
        assertTrue(reason.contains("vectors for allocated, float[] or heap FloatBuffer"), reason);
    }

    @Test
    void theVariantsCoverEveryKernel() {
        Set<UpdateKernel> kernels = new java.util.HashSet<>();
        for (OptimizerConfig config : VariantCatalog.all().values()) kernels.add(UpdatePlan.of(config).kernel());
        assertEquals(new java.util.HashSet<>(io.fusedopt.internal.Algorithms.kernels()), kernels);
    }

    @ParameterizedTest(name = "param {0}, grad {1}")
    @MethodSource("memoryPairs")
    void everyVariantEqualsTheReferenceOnTheExpectedPath(Memory param, Memory grad) {
        boolean vectors = param.vectorized() && grad.vectorized();
        for (Map.Entry<String, OptimizerConfig> variant : VariantCatalog.all().entrySet()) {
            // A matrix kernel's update pass reads the matrix phase's arrays, not the tensors' memory (MuonTest covers it).
            if (io.fusedopt.internal.Algorithms.of(variant.getValue()).takesMatrices()) continue;
            String what = variant.getKey() + ", param " + param + ", grad " + grad;
            List<float[]> reference = REFERENCE.computeIfAbsent(variant.getKey(),
                    name -> run(Backend.CPU, variant.getValue(), Memory.ALLOCATED, Memory.ALLOCATED, null));
            List<float[]> fast = run(Backend.CPU_FAST, variant.getValue(), param, grad, description -> {
                boolean state = UpdatePlan.of(variant.getValue()).usedSlots() > 0;
                // A factored kernel's tensors are updated whole, by the same loops whatever their memory.
                String paths = UpdatePlan.of(variant.getValue()).kernel() instanceof FactoredKernel
                        ? "3 tensors updated whole by loops (factored kernels)" : expectedPaths(vectors, param, grad, state);
                assertTrue(description.contains("; step: " + paths + ")"), what + ": " + description);
            });
            assertEquals(reference.size(), fast.size());
            for (int k = 0; k < reference.size(); k++) assertBitEqual(reference.get(k), fast.get(k), what + ", array " + k);
        }
    }

    /** What the description says of three tensors whose param and grad are in this memory, with or without state. */
    private static String expectedPaths(boolean vectors, Memory param, Memory grad, boolean state) {
        if (!vectors) {
            Set<MemoryKind> loops = EnumSet.noneOf(MemoryKind.class);
            if (!param.vectorized()) loops.add(param.kind);
            if (!grad.vectorized()) loops.add(grad.kind);
            StringBuilder s = new StringBuilder("loops for 3 of 3 tensors (");
            String separator = "";
            for (MemoryKind kind : loops) {
                s.append(separator).append(kind).append(": ").append(VectorSupport.whyLoops(kind));
                separator = "; ";
            }
            return s.append(')').toString();
        }
        // The state is the backend's own memory; the kinds are listed in MemoryKind's order.
        Set<MemoryKind> kinds = EnumSet.of(param.kind, grad.kind);
        if (state) kinds.add(MemoryKind.ALLOCATED);
        StringBuilder s = new StringBuilder("vectors for 3 of 3 tensors (memory: ");
        String separator = "";
        for (MemoryKind kind : kinds) {
            s.append(separator).append(kind);
            separator = ", ";
        }
        return s.append(')').toString();
    }

    /**
     * Steps {@code config} over three tensors whose param and grad are held as given, with a new
     * gradient each step, and returns every param and state afterwards; {@code checkDescription}
     * sees the device description once the step is prepared.
     */
    private static List<float[]> run(Backend backend, OptimizerConfig config, Memory param, Memory grad,
                                     java.util.function.Consumer<String> checkDescription) {
        List<float[]> result = new ArrayList<>();
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, config)) {
            ParamGroup group = opt.addGroup();
            List<TensorBuffer> grads = new ArrayList<>();
            Random random = new Random(42);
            for (int t = 0; t < LENGTHS.length; t++) {
                TensorBuffer p = param.hold(opt, gaussian(random, LENGTHS[t], 1f));
                TensorBuffer g = grad.hold(opt, new float[LENGTHS[t]]);
                group.add("t" + t, p, g);
                grads.add(g);
            }
            for (int step = 0; step < STEPS; step++) {
                for (TensorBuffer g : grads) g.copyFrom(gaussian(random, (int) g.length(), 0.5f));
                opt.step();
                if (step == 0 && checkDescription != null) checkDescription.accept(opt.deviceDescription());
            }
            for (Parameter p : group.parameters()) {
                result.add(p.param().toArray());
                for (StateKind kind : p.stateKinds()) result.add(p.state(kind).toArray());
            }
        }
        return result;
    }

    /** Before the first step the description says what the JVM supports, and nothing of a step. */
    @Test
    void theDescriptionNamesNoStepBeforeOneIsPrepared() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU_FAST, Sgd.builder().build())) {
            assertTrue(opt.deviceDescription().contains(VectorSupport.reason()), opt.deviceDescription());
            assertTrue(!opt.deviceDescription().contains("step:"), opt.deviceDescription());
            opt.addGroup().add("w", opt.wrapHost(new float[9]), opt.allocate(9));
            opt.step();
            assertTrue(opt.deviceDescription().endsWith(
                    "; step: vectors for 1 of 1 tensors (memory: allocated, float[] or heap FloatBuffer))"),
                    opt.deviceDescription());
        }
    }

    private static float[] gaussian(Random random, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian() * scale;
        return v;
    }

    private static void assertBitEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                throw new AssertionError(what + ": element " + i + " is " + actual[i] + ", the reference has " + expected[i]);
            }
        }
    }

    /**
     * The widening path's bf16 conversions in vectors equal {@link io.fusedopt.internal.Conversions}
     * bit for bit: every bf16 value widened, and a million float32 bit patterns (uniform over all
     * bits, so NaNs, infinities, subnormals and ties all occur) plus the halfway points rounded,
     * at odd offsets so the scalar tails run too.
     */
    @Test
    void bf16ConversionsInVectorsEqualTheScalarRules() {
        assertTrue(VectorSupport.available(), VectorSupport.reason());
        short[] every = new short[1 << 16];
        for (int i = 0; i < every.length; i++) every[i] = (short) i;
        float[] widened = new float[every.length + 5];
        VectorConversions.widenBf16(every, 0, widened, 5, every.length);
        for (int i = 0; i < every.length; i++) {
            assertEquals(Float.floatToRawIntBits(io.fusedopt.internal.Conversions.bf16ToFloat(every[i])),
                    Float.floatToRawIntBits(widened[5 + i]), "bf16 0x" + Integer.toHexString(i));
        }
        Random random = new Random(21);
        int n = 1_000_003;
        float[] values = new float[n + 3];
        for (int i = 0; i < n; i++) {
            int bits = random.nextInt();
            if (i % 4 == 0) bits = (bits & 0xFFFF0000) | 0x8000; // exactly halfway: ties to even
            values[3 + i] = Float.intBitsToFloat(bits);
        }
        short[] narrowed = new short[n + 1];
        VectorConversions.narrowBf16(values, 3, narrowed, 1, n);
        for (int i = 0; i < n; i++) {
            assertEquals(io.fusedopt.internal.Conversions.floatToBf16(values[3 + i]), narrowed[1 + i],
                    "float bits 0x" + Integer.toHexString(Float.floatToRawIntBits(values[3 + i])));
        }
    }
}
