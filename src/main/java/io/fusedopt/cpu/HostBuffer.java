package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BufferOwner;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.MemoryRange;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Host memory for the CPU backend, indexed from 0: a {@link FloatBuffer} for float32, or a
 * {@link ShortBuffer} of 16-bit patterns for bf16 and fp16 (heap or direct). A small float32 tensor
 * lies in an array it shares with others ({@link SharedFloats}), its elements from {@code base} on
 * in the array's view: no view of its own, which at 10^5 tensors was tens of megabytes.
 */
final class HostBuffer extends AbstractTensorBuffer implements GradientStatistics.FloatSource, CarvedFloats {
    private FloatBuffer floats;
    /** Where element 0 lies in {@link #floats} (0 unless the view is a shared array's); changed by {@link #moveTo}. */
    private int base;
    private ShortBuffer bits;

    /** Float32 elements: all of {@code data}. */
    HostBuffer(BufferOwner owner, FloatBuffer data, boolean owned) {
        this(owner, data, 0, data.capacity(), owned);
    }

    /** Float32 elements: {@code data[base, base + length)}. */
    HostBuffer(BufferOwner owner, FloatBuffer data, int base, int length, boolean owned) {
        super(owner, length, Precision.FP32, owned);
        this.floats = data;
        this.base = base;
    }

    /** 16-bit elements of {@code precision}. */
    HostBuffer(BufferOwner owner, ShortBuffer data, Precision precision, boolean owned) {
        super(owner, data.capacity(), precision, owned);
        if (precision == Precision.FP32) throw new IllegalArgumentException("16-bit storage cannot hold FP32");
        this.bits = data;
    }

    /** A view of float32 elements [from, from + length), indexed from 0; only for FP32 buffers. Only the engine's kernels use this. */
    FloatBuffer floats(int from, int length) {
        ensureOpen();
        if (floats == null) throw new IllegalStateException("a " + precision() + " buffer has no float32 view");
        return floats.slice(base + from, length);
    }

    @Override
    public float[] carvedArray() {
        // An owned small float32 tensor lies in a shared array (SmallTensorArena), or in the array a run moved it to.
        return isOwnedByLibrary() && floats != null && SmallTensorArena.holds(length()) ? floats.array() : null;
    }

    @Override
    public int carvedOffset() {
        return floats.arrayOffset() + base;
    }

    @Override
    public void moveTo(SharedFloats target, int offset) {
        System.arraycopy(floats.array(), carvedOffset(), target.array, offset, (int) length());
        floats = target.blockViews[0];
        base = offset;
    }

    /** Element {@code i} widened to float32 (exact). */
    float get(int i) {
        return floats != null ? floats.get(base + i) : Conversions.widen(precision(), bits.get(i));
    }

    /** Element {@code index} widened to float32: the gradient statistics read a chunk through this. */
    @Override
    public float get(long index) {
        return get((int) index);
    }

    /** Stores the 16-bit value {@code value} into element {@code i} of a BF16 or FP16 buffer. */
    void setBits(int i, short value) {
        bits.put(i, value);
    }

    /** Stores {@code value} into element {@code i}, rounded to this buffer's precision. */
    void set(int i, float value) {
        if (floats != null) floats.put(base + i, value);
        else bits.put(i, Conversions.narrow(precision(), value));
    }

    @Override
    protected void write(float[] source, int sourceOffset, long offset, int count) {
        if (floats != null) {
            floats.put(base + (int) offset, source, sourceOffset, count);
        } else {
            for (int i = 0; i < count; i++) set((int) offset + i, source[sourceOffset + i]);
        }
    }

    @Override
    protected void read(long offset, float[] destination, int destinationOffset, int count) {
        if (floats != null) {
            floats.get(base + (int) offset, destination, destinationOffset, count);
        } else {
            for (int i = 0; i < count; i++) destination[destinationOffset + i] = get((int) offset + i);
        }
    }

    @Override
    public MemoryRange memoryRange() {
        // Only a wrapped buffer can share memory with another; the slice made at wrap time spans this buffer.
        return isOwnedByLibrary() || floats == null ? null : MemoryRange.of(floats.duplicate().clear());
    }

    @Override
    public boolean isDevice() {
        return false;
    }

    @Override
    public void release() {
        floats = null; // heap memory: dropping the references frees it
        bits = null;
    }
}
