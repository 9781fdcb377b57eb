package io.fusedopt.cpu;

import io.fusedopt.Backend;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.OwnedBuffers;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdateLaunch;
import java.nio.FloatBuffer;
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
    public UpdateLaunch prepare(UpdateKernel kernel, List<TensorOperands> tensors, float[][] groupScalars,
                                int[][] groupFlags) {
        long[] lengths = new long[tensors.size()];
        FloatBuffer[][] operands = new FloatBuffer[tensors.size()][];
        for (int t = 0; t < tensors.size(); t++) {
            TensorOperands tensor = tensors.get(t);
            lengths[t] = tensor.param().length();
            FloatBuffer[] o = new FloatBuffer[2 + tensor.slots().length];
            o[0] = host(tensor.param()).data();
            o[1] = host(tensor.grad()).data();
            for (int j = 0; j < tensor.slots().length; j++) {
                o[2 + j] = tensor.slots()[j] == null ? null : host(tensor.slots()[j]).data();
            }
            operands[t] = o;
        }
        SegmentTable table = SegmentTable.of(lengths);
        return () -> {
            for (int c = 0; c < table.chunkCount(); c++) {
                int t = table.tensor(c);
                int group = tensors.get(t).group();
                runChunk(kernel, operands[t], (int) table.start(c), (int) table.end(c), groupScalars[group], groupFlags[group][0]);
            }
        };
    }

    private static void runChunk(UpdateKernel kernel, FloatBuffer[] o, int from, int to, float[] s, int flags) {
        switch (kernel) {
            case SGD -> ReferenceKernels.sgd(o[0], o[1], from, to, s, flags);
            case MOMENTUM_BUFFER -> ReferenceKernels.momentumBuffer(o[0], o[1], o[2], from, to, s, flags);
            case MOMENTUM_VELOCITY -> ReferenceKernels.momentumVelocity(o[0], o[1], o[2], from, to, s, flags);
            case RMSPROP -> ReferenceKernels.rmsProp(o[0], o[1], o[2], o[3], o[4], from, to, s, flags);
            case ADAM -> ReferenceKernels.adam(o[0], o[1], o[2], o[3], o[4], from, to, s, flags);
            case ADAGRAD -> ReferenceKernels.adagrad(o[0], o[1], o[2], from, to, s, flags);
        }
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
