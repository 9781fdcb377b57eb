package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.OwnedBuffers;
import java.util.List;

/**
 * What both CPU engines share: host memory only, updates finished when {@code step} returns, and
 * the ledger of owned buffers that closing the engine releases.
 */
abstract class HostEngine implements Engine {
    private final OwnedBuffers owned = new OwnedBuffers();
    /** Where {@code allocate} puts small tensors; used under this engine's lock. */
    final SmallTensorArena smallTensors = new SmallTensorArena();
    private boolean closed;

    /** Registers a buffer this engine allocated, so that closing the engine releases it. */
    final synchronized <T extends AbstractTensorBuffer> T own(T buffer) {
        owned.add(buffer);
        return buffer;
    }

    @Override
    public final AbstractTensorBuffer wrapDevicePointer(long address, long length, Precision precision) {
        throw new UnsupportedOperationException("the " + backend() + " backend has no device memory: wrap host memory with"
                + " wrapHost, or create the optimizer for Backend.CUDA");
    }

    /** Zeros written block by block (never modified: writes only read it). */
    private static final float[] ZEROS = new float[1 << 16];

    /**
     * On the calling thread, buffer by buffer, through each buffer's own write (heap, off-heap and
     * wrapped memory alike), so that the CPU engines need no zeroing code of their own.
     */
    /** Both CPU backends keep a quantized state in two heap arrays (its codes, its absmax). */
    @Override
    public final synchronized AbstractTensorBuffer allocateQuantized(long length, CodeMap map, float initialValue) {
        ensureOpen();
        if (length > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("a quantized state on the " + backend() + " backend holds at most "
                    + (Integer.MAX_VALUE - 8) + " elements (one Java array of codes), got " + length);
        }
        return own(new HostQuantizedBuffer(this, (int) length, map, initialValue));
    }

    @Override
    public final synchronized ZeroFill prepareZeroFill(List<AbstractTensorBuffer> buffers) {
        ensureOpen();
        List<AbstractTensorBuffer> targets = List.copyOf(buffers);
        for (AbstractTensorBuffer b : targets) host(b, AbstractTensorBuffer.class);
        return new ZeroFill() {
            @Override
            public void run() {
                for (AbstractTensorBuffer b : targets) {
                    for (long from = 0; from < b.length(); from += ZEROS.length) {
                        b.copyFrom(ZEROS, 0, from, (int) Math.min(ZEROS.length, b.length() - from));
                    }
                }
            }

            @Override
            public void close() {}
        };
    }

    @Override
    public final void synchronize() {
        // Updates run synchronously: step() returns when they are done.
    }

    @Override
    public final synchronized long ownedBytes() {
        return owned.bytes();
    }

    @Override
    public final synchronized boolean isClosed() {
        return closed;
    }

    @Override
    public final synchronized void onBufferClosed(AbstractTensorBuffer buffer) {
        owned.release(buffer);
    }

    @Override
    public final synchronized void close() {
        if (closed) return;
        closed = true;
        owned.releaseAll();
        smallTensors.clear();
        closeResources();
    }

    /** Frees what the engine holds besides its buffers (threads); called once, by close. */
    void closeResources() {}

    final synchronized void ensureOpen() {
        if (closed) throw new IllegalStateException("the optimizer is closed");
    }

    /** The buffer, checked to be host memory of {@code type} owned or wrapped by this engine. */
    final <T extends AbstractTensorBuffer> T host(AbstractTensorBuffer buffer, Class<T> type) {
        if (!type.isInstance(buffer) || buffer.owner() != this) {
            throw new IllegalArgumentException("buffer does not belong to this " + backend() + " optimizer"
                    + (buffer.isDevice() ? " (it is device memory)" : ""));
        }
        return type.cast(buffer);
    }

    /**
     * Refuses, before anything is allocated, a tensor larger than the heap can ever hold. Both CPU
     * backends keep tensors in Java arrays, so {@code -Xmx} bounds them; trying anyway would fill
     * the heap block by block, with seconds of garbage collection, only to fail in the end.
     *
     * @throws OutOfMemoryError naming the sizes, the limit and {@code -Xmx}
     */
    static void requireHeapFor(long length, Precision precision, String backendName) {
        long heap = Runtime.getRuntime().maxMemory(); // Long.MAX_VALUE: no limit
        if (length > heap / precision.bytes()) {
            // The callers bound length (2^31 or 2^59 elements), so the product fits a long.
            throw new OutOfMemoryError("a " + length + "-element " + precision + " tensor takes " + length * precision.bytes()
                    + " bytes, more than"
                    + " the heap's limit of " + heap + " bytes; the " + backendName + " backend keeps tensors in Java arrays"
                    + " on the heap: raise -Xmx (or allocate less)");
        }
    }

    static void checkWrappable(java.nio.FloatBuffer buffer) {
        if (buffer == null) throw new IllegalArgumentException("buffer must not be null");
        if (buffer.isReadOnly()) {
            throw new IllegalArgumentException("a read-only FloatBuffer cannot hold parameters or gradients that are updated");
        }
    }
}
