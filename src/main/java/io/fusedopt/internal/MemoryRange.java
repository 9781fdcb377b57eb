package io.fusedopt.internal;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.Buffer;
import java.nio.FloatBuffer;

/**
 * The bytes behind a buffer: {@code [start, start + bytes)} within {@code base}, which is a Java
 * array for heap memory and {@link #NATIVE} for native addresses (off-heap host memory, or device
 * addresses on CUDA, where every buffer of one optimizer lies in one device's address space). Two
 * ranges overlap when they share a base and at least one byte; empty ranges overlap nothing.
 */
public record MemoryRange(Object base, long start, long bytes, String description) {
    /** The base of native addresses. */
    public static final Object NATIVE = new Object() {
        @Override
        public String toString() {
            return "native memory";
        }
    };

    public boolean overlaps(MemoryRange other) {
        return base == other.base && bytes > 0 && other.bytes > 0
                && start < other.start + other.bytes && other.start < start + bytes;
    }

    /** A device range (CUDA). */
    public static MemoryRange device(long address, long bytes) {
        return new MemoryRange(NATIVE, address, bytes, "device bytes [0x" + Long.toHexString(address) + ", 0x"
                + Long.toHexString(address + bytes) + ")");
    }

    /**
     * Where a float32 buffer's elements from its position to its limit lie, or null when that
     * cannot be found out: a view of a heap {@code ByteBuffer} (neither array-backed nor direct),
     * or a JVM whose direct buffers do not expose their address.
     */
    public static MemoryRange of(FloatBuffer buffer) {
        long bytes = (long) buffer.remaining() * Float.BYTES;
        if (buffer.hasArray()) {
            long start = (long) (buffer.arrayOffset() + buffer.position()) * Float.BYTES;
            return new MemoryRange(buffer.array(), start, bytes, "float[" + buffer.array().length + "] elements ["
                    + start / Float.BYTES + ", " + (start + bytes) / Float.BYTES + ")");
        }
        if (buffer.isDirect() && DirectAddress.AVAILABLE) {
            long start = DirectAddress.of(buffer) + (long) buffer.position() * Float.BYTES;
            return new MemoryRange(NATIVE, start, bytes, "direct memory [0x" + Long.toHexString(start) + ", 0x"
                    + Long.toHexString(start + bytes) + ")");
        }
        return null;
    }

    /**
     * The native address of a direct buffer's element 0. The public API has it from JDK 22 on
     * ({@code MemorySegment.ofBuffer(b).address()}, called reflectively since this is compiled for
     * 17); on JDK 17 to 21 it reads {@code java.nio.Buffer.address} through {@code sun.misc.Unsafe}
     * (module jdk.unsupported, no flag needed, and no warning on those JDKs; JDK 24 and newer warn on
     * Unsafe memory access, which is why they take the public way). Where neither works, direct
     * buffers are not checked for overlap.
     */
    private static final class DirectAddress {
        private static final Method OF_BUFFER;
        private static final Method ADDRESS;
        private static final sun.misc.Unsafe UNSAFE;
        private static final long ADDRESS_OFFSET;
        static final boolean AVAILABLE;

        static {
            Method ofBuffer = null, address = null;
            sun.misc.Unsafe unsafe = null;
            long offset = -1;
            try {
                if (Runtime.version().feature() >= 22) {
                    Class<?> segment = Class.forName("java.lang.foreign.MemorySegment");
                    ofBuffer = segment.getMethod("ofBuffer", Buffer.class);
                    address = segment.getMethod("address");
                } else {
                    Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
                    f.setAccessible(true);
                    unsafe = (sun.misc.Unsafe) f.get(null);
                    offset = unsafe.objectFieldOffset(Buffer.class.getDeclaredField("address"));
                }
            } catch (ReflectiveOperationException | RuntimeException e) {
                ofBuffer = address = null;
                unsafe = null;
            }
            OF_BUFFER = ofBuffer;
            ADDRESS = address;
            UNSAFE = unsafe;
            ADDRESS_OFFSET = offset;
            AVAILABLE = ofBuffer != null || unsafe != null;
        }

        static long of(Buffer direct) {
            if (UNSAFE != null) return UNSAFE.getLong(direct, ADDRESS_OFFSET);
            try {
                // The segment starts at the buffer's position.
                long atPosition = (long) ADDRESS.invoke(OF_BUFFER.invoke(null, direct));
                return atPosition - (long) direct.position() * Float.BYTES;
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot read the address of a direct buffer: " + e, e);
            }
        }
    }
}
