package io.fusedopt.cpu;

import io.fusedopt.Backend;
import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.OwnedBuffers;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepProgram;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Arrays;
import java.util.List;

/**
 * The CPU backend: host memory and {@link ReferenceKernels}, run chunk by chunk over the same
 * {@link SegmentTable} the CUDA backend uploads. Updates run on the calling thread.
 */
public final class CpuEngine implements Engine {
    /** The largest Java array the JVM reliably allocates. */
    static final int MAX_LENGTH = Integer.MAX_VALUE - 8;

    private final OwnedBuffers owned = new OwnedBuffers();
    private boolean closed;

    @Override
    public Backend backend() {
        return Backend.CPU;
    }

    @Override
    public String description() {
        return "CPU reference (" + Runtime.getRuntime().availableProcessors() + " cores available, 1 used)";
    }

    @Override
    public synchronized AbstractTensorBuffer allocate(long length, Precision precision, float initialValue) {
        ensureOpen();
        if (length < 0 || length > MAX_LENGTH) {
            throw new IllegalArgumentException("the CPU reference backend holds 0 to " + MAX_LENGTH
                    + " elements per tensor (one Java array), got " + length);
        }
        HostBuffer buffer;
        if (precision == Precision.FP32) {
            float[] data = new float[(int) length];
            if (initialValue != 0f) Arrays.fill(data, initialValue);
            buffer = new HostBuffer(this, FloatBuffer.wrap(data), true);
        } else {
            short[] data = new short[(int) length];
            buffer = new HostBuffer(this, ShortBuffer.wrap(data), precision, true);
            if (initialValue != 0f) {
                for (int i = 0; i < data.length; i++) buffer.set(i, initialValue);
            }
        }
        owned.add(buffer);
        return buffer;
    }

    @Override
    public AbstractTensorBuffer wrapDevicePointer(long address, long length, Precision precision) {
        throw new UnsupportedOperationException(
                "the CPU backend has no device memory: wrap host memory with wrapHost, or create the optimizer for Backend.CUDA");
    }

    @Override
    public synchronized AbstractTensorBuffer wrapHost(FloatBuffer buffer) {
        ensureOpen();
        if (buffer == null) throw new IllegalArgumentException("buffer must not be null");
        if (buffer.isReadOnly()) {
            throw new IllegalArgumentException("a read-only FloatBuffer cannot hold parameters or gradients that are updated");
        }
        return new HostBuffer(this, buffer.slice(), false);
    }

    @Override
    public StepProgram prepare(List<KernelBatch> batches, GroupTable groups) {
        ensureOpen();
        return new CpuStepProgram(batches, groups, this::host);
    }

    private HostBuffer host(AbstractTensorBuffer buffer) {
        if (!(buffer instanceof HostBuffer h) || h.owner() != this) {
            throw new IllegalArgumentException("buffer does not belong to this CPU optimizer"
                    + (buffer.isDevice() ? " (it is device memory)" : ""));
        }
        return h;
    }

    @Override
    public void synchronize() {
        // Updates run synchronously on the calling thread.
    }

    @Override
    public synchronized long ownedBytes() {
        return owned.bytes();
    }

    @Override
    public synchronized boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void onBufferClosed(AbstractTensorBuffer buffer) {
        owned.release(buffer);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        owned.releaseAll();
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("the optimizer is closed");
    }
}
