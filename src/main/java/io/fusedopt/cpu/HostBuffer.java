package io.fusedopt.cpu;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BufferOwner;
import java.nio.FloatBuffer;

/** Host memory for the CPU backend: a {@link FloatBuffer} indexed from 0 (heap or direct). */
final class HostBuffer extends AbstractTensorBuffer {
    private FloatBuffer data;

    HostBuffer(BufferOwner owner, FloatBuffer data, boolean owned) {
        super(owner, data.capacity(), owned);
        this.data = data;
    }

    /** The elements; index i is element i. Only the engine's kernels use this. */
    FloatBuffer data() {
        ensureOpen();
        return data;
    }

    @Override
    protected void write(float[] source, int sourceOffset, long offset, int count) {
        data.put((int) offset, source, sourceOffset, count);
    }

    @Override
    protected void read(long offset, float[] destination, int destinationOffset, int count) {
        data.get((int) offset, destination, destinationOffset, count);
    }

    @Override
    public boolean isDevice() {
        return false;
    }

    @Override
    public void release() {
        data = null; // heap memory: dropping the reference frees it
    }
}
