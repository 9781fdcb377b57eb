package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BufferOwner;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.MemoryRange;
import io.fusedopt.internal.SegmentTable;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Host memory of the fast CPU backend: Java arrays ({@code float[]}, or {@code short[]} for 16-bit
 * formats) of {@code 2^blockShift} elements each, the last one shorter, so one tensor may hold more
 * than 2^31 elements although one array cannot. Element {@code i} lives in block {@link #block(long)} at
 * {@link #offset(long)}. A block holds whole chunks of the segment table ({@code blockShift >= 16}),
 * so every chunk an update works on lies inside one block and is addressed with int offsets. A small
 * tensor is one block that is a shared array ({@link SmallTensorArena}), its elements from
 * {@code base} on: offsets are positions in the block's array and in its view alike.
 *
 * <p>Arrays, not direct memory: the Vector API reaches heap arrays at the memory system's limit on
 * every JDK ({@code fromArray}), while on JDK 17 and 18 it reads direct memory only through
 * {@code fromByteBuffer}, measured at a quarter of the array speed in cache and 60% from memory
 * (SGD, one core). The heap's limit ({@code -Xmx}) bounds the blocks, and the collector returns
 * them once the buffer is unreachable.
 */
final class BlockedHostBuffer extends AbstractTensorBuffer implements CarvedFloats {
    /** 2^28 elements: 1 GiB blocks for float32, a power of two well inside an array's limit. */
    static final int DEFAULT_BLOCK_SHIFT = 28;
    /** The most blocks one tensor has: the blocks are held in one Java array. */
    static final int MAX_BLOCKS = Integer.MAX_VALUE - 8;
    /** A wrapped FloatBuffer is one block; its int indices never reach 2^31. */
    private static final int WRAPPED_BLOCK_SHIFT = 31;

    private final int blockShift;
    /** Where element 0 lies in block 0 (0 unless the block is an array shared by small tensors); changed by {@link #moveTo}. */
    private int base;
    /** The float32 blocks (for the Vector API), or null for a wrapped FloatBuffer and for 16-bit formats. */
    private float[][] arrays;
    /** The 16-bit blocks, or null for float32. */
    private short[][] shortArrays;
    private FloatBuffer[] floats; // FP32 views, else null
    private ShortBuffer[] bits;   // 16-bit views, else null

    private BlockedHostBuffer(BufferOwner owner, long length, Precision precision, boolean owned, int blockShift, int base,
                              float[][] arrays, short[][] shortArrays, FloatBuffer[] floats, ShortBuffer[] bits) {
        super(owner, length, precision, owned);
        this.blockShift = blockShift;
        this.base = base;
        this.arrays = arrays;
        this.shortArrays = shortArrays;
        this.floats = floats;
        this.bits = bits;
    }

    /**
     * New zeroed memory of {@code length} elements, then set to {@code initialValue}.
     *
     * @throws IllegalArgumentException when the length needs more than {@link #MAX_BLOCKS} blocks
     * @throws OutOfMemoryError naming the heap limit when the tensor is larger than the heap can
     *     ever hold (refused up front) or the JVM cannot allocate the blocks
     */
    static BlockedHostBuffer allocate(BufferOwner owner, long length, Precision precision, float initialValue, int blockShift) {
        requireBlockShift(blockShift);
        long maxLength = (long) MAX_BLOCKS << blockShift;
        if (length > maxLength) {
            // Beyond it the block count overflows an int: the buffer would claim the length with one block behind it.
            throw new IllegalArgumentException("the fast CPU backend holds at most " + maxLength + " elements per tensor ("
                    + MAX_BLOCKS + " blocks of 2^" + blockShift + "), got " + length);
        }
        HostEngine.requireHeapFor(length, precision, "fast CPU");
        int blocks = Math.max((int) ((length + (1L << blockShift) - 1) >>> blockShift), 1);
        boolean fp32 = precision == Precision.FP32;
        float[][] arrays = fp32 ? new float[blocks][] : null;
        short[][] shortArrays = fp32 ? null : new short[blocks][];
        FloatBuffer[] floats = fp32 ? new FloatBuffer[blocks] : null;
        ShortBuffer[] bits = fp32 ? null : new ShortBuffer[blocks];
        for (int b = 0; b < blocks; b++) {
            int elements = (int) Math.min(length - ((long) b << blockShift), 1L << blockShift);
            try {
                if (fp32) {
                    arrays[b] = new float[elements];
                    floats[b] = FloatBuffer.wrap(arrays[b]);
                } else {
                    shortArrays[b] = new short[elements];
                    bits[b] = ShortBuffer.wrap(shortArrays[b]);
                }
            } catch (OutOfMemoryError e) {
                OutOfMemoryError clear = new OutOfMemoryError("cannot allocate " + (long) elements * precision.bytes()
                        + " bytes for block " + b + " of a " + length + "-element " + precision + " tensor (" + e.getMessage()
                        + "); the fast CPU backend keeps tensors in Java arrays on the heap, whose limit is "
                        + Runtime.getRuntime().maxMemory() + " bytes: raise -Xmx");
                clear.initCause(e);
                throw clear;
            }
        }
        BlockedHostBuffer buffer = new BlockedHostBuffer(owner, length, precision, true, blockShift, 0, arrays, shortArrays, floats, bits);
        if (initialValue != 0f) buffer.fill(initialValue);
        return buffer;
    }

    /**
     * A small tensor ({@link SmallTensorArena#holds}) of zeroed elements in one of {@code arena}'s
     * shared arrays, then set to {@code initialValue}. Its one block is the whole shared array
     * (views included), so that offsets mean the same in the array and in the view.
     */
    static BlockedHostBuffer carve(BufferOwner owner, SmallTensorArena arena, long length, Precision precision, float initialValue,
                                   int blockShift) {
        requireBlockShift(blockShift);
        BlockedHostBuffer buffer;
        if (precision == Precision.FP32) {
            SmallTensorArena.Carved elements = arena.carveFloats((int) length);
            SharedFloats shared = elements.in();
            buffer = new BlockedHostBuffer(owner, length, precision, true, blockShift, elements.offset(), shared.blocks, null,
                    shared.blockViews, null);
        } else {
            ShortBuffer elements = arena.shorts((int) length);
            short[] shared = elements.array();
            buffer = new BlockedHostBuffer(owner, length, precision, true, blockShift, elements.arrayOffset(),
                    null, new short[][] {shared}, null, new ShortBuffer[] {ShortBuffer.wrap(shared)});
        }
        if (initialValue != 0f) buffer.fill(initialValue);
        return buffer;
    }

    private static void requireBlockShift(int blockShift) {
        if (blockShift < Long.numberOfTrailingZeros(SegmentTable.CHUNK_ELEMENTS) || blockShift > DEFAULT_BLOCK_SHIFT) {
            throw new IllegalArgumentException("block shift must hold whole chunks and fit an array, got " + blockShift);
        }
    }

    /** A caller's float32 buffer (heap or direct), used in place from its position to its limit. */
    static BlockedHostBuffer wrap(BufferOwner owner, FloatBuffer data) {
        FloatBuffer view = data.slice();
        return new BlockedHostBuffer(owner, view.capacity(), Precision.FP32, false, WRAPPED_BLOCK_SHIFT, 0,
                null, null, new FloatBuffer[] {view}, null);
    }

    @Override
    public float[] carvedArray() {
        // Owned tensors of SmallTensorArena's lengths are carved (allocate takes the others): one block, a shared array.
        return isOwnedByLibrary() && arrays != null && SmallTensorArena.holds(length()) ? arrays[0] : null;
    }

    @Override
    public int carvedOffset() {
        return base;
    }

    @Override
    public void moveTo(SharedFloats target, int offset) {
        System.arraycopy(arrays[0], base, target.array, offset, (int) length());
        // As carve makes them: the one block is the whole array, so that offsets mean the same in the array and the view.
        arrays = target.blocks;
        floats = target.blockViews;
        base = offset;
    }

    /** The block of element {@code index}. */
    int block(long index) {
        return blockOf(index, blockShift);
    }

    /** Element {@code index}'s position inside its block (its array and its view). */
    int offset(long index) {
        return base + offsetOf(index, blockShift);
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
        return floats != null ? floats.length : bits.length;
    }

    /** The kind of memory the elements lie in: the backend's own blocks, or the kind of the wrapped buffer. */
    MemoryKind memoryKind() {
        ensureOpen();
        return isOwnedByLibrary() ? MemoryKind.ALLOCATED : MemoryKind.ofWrapped(floats[0]);
    }

    /** Block {@code b}'s float32 array, or null when the buffer wraps a caller's FloatBuffer or is 16-bit. */
    float[] array(int b) {
        ensureOpen();
        return arrays == null ? null : arrays[b];
    }

    /** Block {@code b}'s 16-bit array (bits as {@link Conversions} reads them); only for BF16 and FP16 buffers. */
    short[] shortArray(int b) {
        ensureOpen();
        if (shortArrays == null) throw new IllegalStateException("a " + precision() + " buffer has no 16-bit blocks");
        return shortArrays[b];
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
        arrays = null; // the blocks are freed when the collector finds them unreachable
        shortArrays = null;
        floats = null;
        bits = null;
    }
}
