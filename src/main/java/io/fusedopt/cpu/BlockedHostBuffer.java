package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BufferOwner;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.MemoryRange;
import io.fusedopt.internal.SegmentTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Host memory of the fast CPU backend: off-heap (direct, native byte order) blocks of
 * {@code 2^blockShift} elements each, the last one shorter, so one tensor may hold more than 2^31
 * elements although one NIO buffer cannot. Element {@code i} lives in block {@link #block(long)} at
 * {@link #offset(long)}. A block holds whole chunks of the segment table ({@code blockShift >= 16}),
 * so every chunk an update works on lies inside one block and is addressed with int offsets.
 *
 * <p>Direct memory is returned by the garbage collector once the buffer is unreachable (never
 * explicitly: a freed address still referenced by a prepared step would crash the JVM); the JVM's
 * direct-memory limit ({@code -XX:MaxDirectMemorySize}, by default the heap size) bounds it.
 */
final class BlockedHostBuffer extends AbstractTensorBuffer {
    /** 2^28 elements: 1 GiB blocks for float32, the largest power of two a direct buffer holds. */
    static final int DEFAULT_BLOCK_SHIFT = 28;
    /** A wrapped FloatBuffer is one block; its int indices never reach 2^31. */
    private static final int WRAPPED_BLOCK_SHIFT = 31;

    private final int blockShift;
    /** The blocks' bytes (for the Vector API), or null for a wrapped FloatBuffer. */
    private ByteBuffer[] bytes;
    private FloatBuffer[] floats; // FP32 views, else null
    private ShortBuffer[] bits;   // 16-bit views, else null

    private BlockedHostBuffer(BufferOwner owner, long length, Precision precision, boolean owned, int blockShift,
                              ByteBuffer[] bytes, FloatBuffer[] floats, ShortBuffer[] bits) {
        super(owner, length, precision, owned);
        this.blockShift = blockShift;
        this.bytes = bytes;
        this.floats = floats;
        this.bits = bits;
    }

    /**
     * New zeroed off-heap memory of {@code length} elements, then set to {@code initialValue}.
     *
     * @throws OutOfMemoryError naming the direct-memory limit when the JVM cannot reserve the blocks
     */
    static BlockedHostBuffer allocate(BufferOwner owner, long length, Precision precision, float initialValue, int blockShift) {
        if (blockShift < Long.numberOfTrailingZeros(SegmentTable.CHUNK_ELEMENTS) || blockShift > DEFAULT_BLOCK_SHIFT) {
            throw new IllegalArgumentException("block shift must hold whole chunks and fit a direct buffer, got " + blockShift);
        }
        int blocks = (int) ((length + (1L << blockShift) - 1) >>> blockShift);
        ByteBuffer[] bytes = new ByteBuffer[Math.max(blocks, 1)];
        FloatBuffer[] floats = precision == Precision.FP32 ? new FloatBuffer[bytes.length] : null;
        ShortBuffer[] bits = precision == Precision.FP32 ? null : new ShortBuffer[bytes.length];
        for (int b = 0; b < bytes.length; b++) {
            long elements = Math.min(length - ((long) b << blockShift), 1L << blockShift);
            int byteCount = (int) (elements * precision.bytes());
            try {
                bytes[b] = ByteBuffer.allocateDirect(byteCount).order(ByteOrder.nativeOrder());
            } catch (OutOfMemoryError e) {
                OutOfMemoryError clear = new OutOfMemoryError("cannot reserve " + byteCount + " bytes of direct memory for block "
                        + b + " of a " + length + "-element " + precision + " tensor (" + e.getMessage()
                        + "); the fast CPU backend keeps tensors off-heap: raise -XX:MaxDirectMemorySize");
                clear.initCause(e);
                throw clear;
            }
            if (floats != null) floats[b] = bytes[b].asFloatBuffer();
            else bits[b] = bytes[b].asShortBuffer();
        }
        BlockedHostBuffer buffer = new BlockedHostBuffer(owner, length, precision, true, blockShift, bytes, floats, bits);
        if (initialValue != 0f) buffer.fill(initialValue);
        return buffer;
    }

    /** A caller's float32 buffer (heap or direct), used in place from its position to its limit. */
    static BlockedHostBuffer wrap(BufferOwner owner, FloatBuffer data) {
        FloatBuffer view = data.slice();
        return new BlockedHostBuffer(owner, view.capacity(), Precision.FP32, false, WRAPPED_BLOCK_SHIFT,
                null, new FloatBuffer[] {view}, null);
    }

    /** The block of element {@code index}. */
    int block(long index) {
        return blockOf(index, blockShift);
    }

    /** Element {@code index}'s position inside its block. */
    int offset(long index) {
        return offsetOf(index, blockShift);
    }

    static int blockOf(long index, int blockShift) {
        return (int) (index >>> blockShift);
    }

    static int offsetOf(long index, int blockShift) {
        return (int) (index & ((1L << blockShift) - 1));
    }

    /** How many blocks hold the elements (1 for a wrapped buffer, and for an empty one). */
    int blockCount() {
        ensureOpen();
        return bytes != null ? bytes.length : floats.length;
    }

    /** The kind of memory the elements lie in: the backend's own blocks, or the kind of the wrapped buffer. */
    MemoryKind memoryKind() {
        ensureOpen();
        return bytes != null ? MemoryKind.ALLOCATED : MemoryKind.ofWrapped(floats[0]);
    }

    /** Block {@code b}'s bytes in native order, or null when the buffer wraps a caller's FloatBuffer. */
    ByteBuffer bytes(int b) {
        ensureOpen();
        return bytes == null ? null : bytes[b];
    }

    /** Block {@code b} as float32; only for FP32 buffers. */
    FloatBuffer floats(int b) {
        ensureOpen();
        if (floats == null) throw new IllegalStateException("a " + precision() + " buffer has no float32 view");
        return floats[b];
    }

    /** Element {@code index} widened to float32 (exact). */
    float get(long index) {
        int b = block(index);
        int i = offset(index);
        return floats != null ? floats[b].get(i) : Conversions.widen(precision(), bits[b].get(i));
    }

    /** Stores {@code value} into element {@code index}, rounded to this buffer's precision. */
    void set(long index, float value) {
        int b = block(index);
        int i = offset(index);
        if (floats != null) floats[b].put(i, value);
        else bits[b].put(i, Conversions.narrow(precision(), value));
    }

    private void fill(float value) {
        for (long i = 0; i < length(); i++) set(i, value);
    }

    @Override
    protected void write(float[] source, int sourceOffset, long offset, int count) {
        int done = 0;
        while (done < count) {
            long index = offset + done;
            int n = spanInBlock(index, count - done);
            if (floats != null) {
                floats[block(index)].put(offset(index), source, sourceOffset + done, n);
            } else {
                for (int k = 0; k < n; k++) set(index + k, source[sourceOffset + done + k]);
            }
            done += n;
        }
    }

    @Override
    protected void read(long offset, float[] destination, int destinationOffset, int count) {
        int done = 0;
        while (done < count) {
            long index = offset + done;
            int n = spanInBlock(index, count - done);
            if (floats != null) {
                floats[block(index)].get(offset(index), destination, destinationOffset + done, n);
            } else {
                for (int k = 0; k < n; k++) destination[destinationOffset + done + k] = get(index + k);
            }
            done += n;
        }
    }

    /** How many of {@code wanted} elements from {@code index} lie in index's block. */
    private int spanInBlock(long index, int wanted) {
        long blockEnd = ((long) block(index) + 1) << blockShift;
        return (int) Math.min(wanted, blockEnd - index);
    }

    @Override
    public MemoryRange memoryRange() {
        // Only a wrapped buffer (one block, the slice made at wrap time) can share memory with another.
        return isOwnedByLibrary() || floats == null ? null : MemoryRange.of(floats[0].duplicate().clear());
    }

    @Override
    public boolean isDevice() {
        return false;
    }

    @Override
    public void release() {
        bytes = null; // the blocks are freed when the collector finds them unreachable
        floats = null;
        bits = null;
    }
}
