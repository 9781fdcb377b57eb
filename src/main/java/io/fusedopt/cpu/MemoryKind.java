package io.fusedopt.cpu;

import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * The kinds of float32 memory a fast-backend tensor can live in, as the Vector API sees them: each
 * kind is loaded and stored through one entry point, and {@link VectorSupport} says which kinds
 * this JVM vectorizes. The label is what {@link FastCpuEngine#description()} prints.
 */
enum MemoryKind {
    /** The backend's own blocks (Java arrays). */
    ALLOCATED("allocated"),
    /** A caller's float[] ({@code wrapHost(float[])}) or a heap FloatBuffer with an accessible array. */
    HEAP_ARRAY("float[] or heap FloatBuffer"),
    /** A caller's direct FloatBuffer in native byte order. */
    DIRECT_BUFFER("direct FloatBuffer"),
    /**
     * A caller's FloatBuffer view of a ByteBuffer in the other byte order, or of a heap ByteBuffer
     * (no float[] behind it): the loops read it element by element through the buffer.
     */
    OTHER_VIEW("FloatBuffer view of a non-native-order or heap ByteBuffer");

    private final String label;

    MemoryKind(String label) {
        this.label = label;
    }

    /** The kind of a caller's buffer, as {@code wrapHost} keeps it. */
    static MemoryKind ofWrapped(FloatBuffer buffer) {
        if (buffer.hasArray()) return HEAP_ARRAY;
        if (buffer.isDirect() && buffer.order() == ByteOrder.nativeOrder()) return DIRECT_BUFFER;
        return OTHER_VIEW;
    }

    @Override
    public String toString() {
        return label;
    }
}
