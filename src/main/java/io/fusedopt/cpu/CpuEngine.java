package io.fusedopt.cpu;

import io.fusedopt.Backend;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.OwnedBuffers;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdateLaunch;
import java.nio.FloatBuffer;
import java.util.Arrays;

/** The CPU backend: host memory and {@link ReferenceKernels}. Updates run on the calling thread. */
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
    public synchronized AbstractTensorBuffer allocate(long length, float initialValue) {
        ensureOpen();
        if (length < 0 || length > MAX_LENGTH) {
            throw new IllegalArgumentException("the CPU reference backend holds 0 to " + MAX_LENGTH
                    + " elements per tensor (one Java array), got " + length);
        }
        float[] data = new float[(int) length];
        if (initialValue != 0f) Arrays.fill(data, initialValue);
        HostBuffer buffer = new HostBuffer(this, FloatBuffer.wrap(data), true);
        owned.add(buffer);
        return buffer;
    }

    @Override
    public AbstractTensorBuffer wrapDevicePointer(long address, long length) {
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
    public UpdateLaunch prepare(UpdateKernel kernel, AbstractTensorBuffer param, AbstractTensorBuffer grad,
                                AbstractTensorBuffer[] slots, float[] scalars, int[] flags) {
        FloatBuffer p = host(param).data();
        FloatBuffer g = host(grad).data();
        FloatBuffer[] st = new FloatBuffer[slots.length];
        for (int i = 0; i < slots.length; i++) st[i] = slots[i] == null ? null : host(slots[i]).data();
        int n = (int) param.length();
        return switch (kernel) {
            case SGD -> () -> ReferenceKernels.sgd(p, g, n, scalars, flags[0]);
            case MOMENTUM_BUFFER -> () -> ReferenceKernels.momentumBuffer(p, g, st[0], n, scalars, flags[0]);
            case MOMENTUM_VELOCITY -> () -> ReferenceKernels.momentumVelocity(p, g, st[0], n, scalars, flags[0]);
            case RMSPROP -> () -> ReferenceKernels.rmsProp(p, g, st[0], st[1], st[2], n, scalars, flags[0]);
            case ADAM -> () -> ReferenceKernels.adam(p, g, st[0], st[1], st[2], n, scalars, flags[0]);
            case ADAGRAD -> () -> ReferenceKernels.adagrad(p, g, st[0], n, scalars, flags[0]);
        };
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
