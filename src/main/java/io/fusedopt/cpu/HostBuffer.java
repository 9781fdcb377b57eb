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
 * {@link ShortBuffer} of 16-bit patterns for bf16 and fp16 (heap or direct).
 */
final class HostBuffer extends AbstractTensorBuffer implements GradientStatistics.FloatSource, CarvedFloats {
    private FloatBuffer floats;
    private ShortBuffer bits;

    /** Float32 elements. */
    HostBuffer(BufferOwner owner, FloatBuffer data, boolean owned) {
        super(owner, data.capacity(), Precision.FP32, owned);
        this.floats = data;
    }

    /** 16-bit elements of {@code precision}. */
    HostBuffer(BufferOwner owner, ShortBuffer data, Precision precision, boolean owned) {
        super(owner, data.capacity(), precision, owned);
        if (precision == Precision.FP32) throw new IllegalArgumentException("16-bit storage cannot hold FP32");
        this.bits = data;
    }

    /** The float32 elements; only for FP32 buffers. Only the engine's kernels use this. */
    FloatBuffer floats() {
        ensureOpen();
        if (floats == null) throw new IllegalStateException("a " + precision() + " buffer has no float32 view");
        return floats;
    }

    @Override
    public float[] carvedArray() {
        // An owned small float32 tensor is a view of a shared array (SmallTensorArena), or of the array a run moved it to.
        return isOwnedByLibrary() && floats != null && SmallTensorArena.holds(length()) ? floats.array() : null;
    }

    @Override
    public int carvedOffset() {
        return floats.arrayOffset();
    }

    @Override
    public void moveTo(float[] array, int offset) {
        int n = (int) length();
        System.arraycopy(floats.array(), floats.arrayOffset(), array, offset, n);
        floats = FloatBuffer.wrap(array, offset, n).slice();
    }

    /** Element {@code i} widened to float32 (exact). */
    float get(int i) {
        return floats != null ? floats.get(i) : Conversions.widen(precision(), bits.get(i));
    }

    /** Element {@code index} widened to float32: the gradient statistics read a chunk through this. */
    @Override
    public float get(long index) {
        return get((int) index);
    }

    /** Stores {@code value} into element {@code i}, rounded to this buffer's precision. */
    void set(int i, float value) {
        if (floats != null) floats.put(i, value);
        else bits.put(i, Conversions.narrow(precision(), value));
    }

    @Override
    protected void write(float[] source, int sourceOffset, long offset, int count) {
        if (floats != null) {
            floats.put((int) offset, source, sourceOffset, count);
        } else {
            for (int i = 0; i < count; i++) set((int) offset + i, source[sourceOffset + i]);
        }
    }

    @Override
    protected void read(long offset, float[] destination, int destinationOffset, int count) {
        if (floats != null) {
            floats.get((int) offset, destination, destinationOffset, count);
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
