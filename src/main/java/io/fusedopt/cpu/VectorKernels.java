package io.fusedopt.cpu;


import io.fusedopt.internal.UpdateKernel;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.Buffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The support of the updates in SIMD form (the incubating Vector API), each algorithm's
 * {@link VectorUpdate} beside its reference loop: every lane performs the
 * reference's float32 operations in the reference's order, with {@code lanewise FMA} exactly where
 * the reference calls {@link Math#fma}; multiplication is commutative and every operation is
 * correctly rounded, so each lane's bits equal the reference's. The elements after the last whole
 * vector run through {@link ReferenceKernels} itself.
 *
 * <p>Each kernel's arithmetic exists once; only {@link #load} and {@link #store} know where an
 * operand lies ({@link VectorOperand}): a heap array through {@code fromArray}/{@code intoArray}
 * (every JDK, at the memory system's limit; the backend's own memory is arrays for this reason), or
 * a caller's native-order direct FloatBuffer as a {@code MemorySegment} through
 * {@code fromMemorySegment} (JDK 19 and later; the ByteBuffer entry points of JDK 17 and 18 cannot
 * read a FloatBuffer, so a direct FloatBuffer runs the loops there). The library is compiled for Java 17, so the JDK 19+ methods are found once at class
 * initialization ({@link #NATIVE_ACCESS}) and reached through constant {@link MethodHandle}s invoked
 * with {@code invokeExact}, which C2 inlines like direct calls. A load site therefore sees at most
 * two memory forms in one JVM (array and segment), chosen by a null test rather than a virtual
 * call, so mixed operands (a caller's direct param with the backend's state) still compile to
 * vector code.
 *
 * <p>Operands: {param, grad, slot0, slot1, slot2} as {@link VectorOperand}s for the vectors, and
 * FloatBuffer views of the same elements for the tail; element indices, not byte offsets. Load this
 * class only after {@link VectorSupport} said it links and runs here.
 */
public final class VectorKernels {
    private VectorKernels() {}

    /** The preferred species: the vector length every {@link VectorUpdate} steps by. */
    public static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /** "MemorySegment" where direct FloatBuffers reach the vectors (JDK 19 and later), else null. */
    static final String NATIVE_ACCESS;
    /** (Object segment, long byteOffset) FloatVector: the segment load; null before JDK 19. */
    private static final MethodHandle LOAD_NATIVE;
    /** (FloatVector, Object segment, long byteOffset) void: the segment store; null before JDK 19. */
    private static final MethodHandle STORE_NATIVE;
    /** (Buffer) Object: a direct buffer as a MemorySegment from its position; null before JDK 19. */
    private static final MethodHandle SEGMENT_OF_BUFFER;

    static {
        MethodHandles.Lookup lookup = MethodHandles.publicLookup();
        MethodHandle load = null, store = null, ofBuffer = null;
        Class<?> segment = null;
        try {
            // java.lang.foreign is final from JDK 22, a preview API in 19 to 21, absent in 17 and 18.
            segment = Class.forName("java.lang.foreign.MemorySegment");
        } catch (ClassNotFoundException beforeJdk19) {
            // Direct FloatBuffers run the loops; everything else is arrays.
        }
        if (segment != null) {
            try {
                load = lookup.findStatic(FloatVector.class, "fromMemorySegment", MethodType.methodType(FloatVector.class,
                        VectorSpecies.class, segment, long.class, ByteOrder.class));
                store = lookup.findVirtual(FloatVector.class, "intoMemorySegment",
                        MethodType.methodType(void.class, segment, long.class, ByteOrder.class));
                ofBuffer = lookup.findStatic(segment, "ofBuffer", MethodType.methodType(segment, Buffer.class))
                        .asType(MethodType.methodType(Object.class, Buffer.class));
            } catch (ReflectiveOperationException e) {
                throw new UnsupportedOperationException("this JDK has java.lang.foreign.MemorySegment but FloatVector"
                        + " has no fromMemorySegment: " + e, e);
            }
            load = MethodHandles.insertArguments(MethodHandles.insertArguments(load, 3, ORDER), 0, SPECIES);
            store = MethodHandles.insertArguments(store, 3, ORDER);
            // explicitCastArguments: Object to MemorySegment, which this code cannot name.
            load = MethodHandles.explicitCastArguments(load, MethodType.methodType(FloatVector.class, Object.class, long.class));
            store = MethodHandles.explicitCastArguments(store,
                    MethodType.methodType(void.class, FloatVector.class, Object.class, long.class));
        }
        LOAD_NATIVE = load;
        STORE_NATIVE = store;
        SEGMENT_OF_BUFFER = ofBuffer;
        NATIVE_ACCESS = segment == null ? null : "MemorySegment";
    }

    /** Whether a caller's direct FloatBuffer can be read by vectors here (only through a MemorySegment). */
    static boolean directFloatBuffersSupported() {
        return SEGMENT_OF_BUFFER != null;
    }

    /**
     * A caller's float32 buffer from its position as a vector operand, or null when this JDK cannot
     * read its kind with vectors ({@link MemoryKind#OTHER_VIEW}; a direct buffer on JDK 17 and 18).
     */
    static VectorOperand ofWrapped(FloatBuffer buffer) {
        switch (MemoryKind.ofWrapped(buffer)) {
            case HEAP_ARRAY:
                return VectorOperand.ofArray(buffer.array(), buffer.arrayOffset() + buffer.position());
            case DIRECT_BUFFER:
                return SEGMENT_OF_BUFFER == null ? null : VectorOperand.ofNative(segmentOf(buffer));
            default:
                return null;
        }
    }

    private static Object segmentOf(Buffer buffer) {
        try {
            return (Object) SEGMENT_OF_BUFFER.invokeExact(buffer);
        } catch (Throwable t) {
            throw unchecked(t);
        }
    }

    /** Runs {@code kernel} over [from, to) of {param, grad, slot0, slot1, slot2} (null where unused). */
    static void run(UpdateKernel kernel, VectorOperand[] o, FloatBuffer[] f, int from, int to, float[] s, int flags) {
        int vectorEnd = from + SPECIES.loopBound(to - from);
        if (vectorEnd > from) kernel.vectorUpdate().run(o, from, vectorEnd, s, flags);
        if (vectorEnd < to) kernel.reference(f, 0, vectorEnd, to, s, flags);
    }

    /**
     * Elements [i, i + lanes) of {@code o}. The array test is a branch, not a virtual call: the JIT
     * keeps one profile per site, and two memory forms never make it megamorphic.
     */
    public static FloatVector load(VectorOperand o, int i) {
        float[] array = o.array;
        if (array != null) return FloatVector.fromArray(SPECIES, array, o.arrayOffset + i);
        try {
            return (FloatVector) LOAD_NATIVE.invokeExact(o.memory, o.byteOffset + ((long) i << 2));
        } catch (Throwable t) {
            throw unchecked(t);
        }
    }

    /** Stores lanes into elements [i, i + lanes) of {@code o}. */
    public static void store(FloatVector v, VectorOperand o, int i) {
        float[] array = o.array;
        if (array != null) {
            v.intoArray(array, o.arrayOffset + i);
            return;
        }
        try {
            STORE_NATIVE.invokeExact(v, o.memory, o.byteOffset + ((long) i << 2));
        } catch (Throwable t) {
            throw unchecked(t);
        }
    }

    /** The handles call Vector API methods that declare no checked exception: anything thrown is unchecked. */
    private static RuntimeException unchecked(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    /** {@code value} in every lane. */
    public static FloatVector broadcast(float value) {
        return FloatVector.broadcast(SPECIES, value);
    }

    /** ReferenceKernels.effectiveGrad: negated for maximize, then fma(weightDecay, p, g) for L2. */
    public static FloatVector effectiveGrad(FloatVector g, FloatVector p, FloatVector weightDecay, boolean maximize, boolean l2) {
        if (maximize) g = g.neg();
        if (l2) g = p.fma(weightDecay, g);
        return g;
    }

    /** ReferenceKernels.maxPropagatingNaN per lane: the candidate where it is larger or NaN. */
    public static FloatVector maxPropagatingNaN(FloatVector current, FloatVector candidate) {
        VectorMask<Float> takeNew = candidate.compare(VectorOperators.GT, current).or(candidate.test(VectorOperators.IS_NAN));
        return current.blend(candidate, takeNew);
    }
}
