package io.fusedopt.internal;

import io.fusedopt.Precision;
import io.fusedopt.TensorBuffer;
import java.util.Objects;

/**
 * The checks every buffer shares (state, ranges, registration) in one place; subclasses move the
 * bytes. After these checks a subclass may assume a valid, open buffer and an in-range request.
 */
public abstract class AbstractTensorBuffer implements TensorBuffer {
    private final BufferOwner owner;
    private final long length;
    private final Precision precision;
    private final boolean owned;
    private boolean closed;
    private String registeredAs;

    protected AbstractTensorBuffer(BufferOwner owner, long length, Precision precision, boolean owned) {
        if (length < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + length);
        }
        this.owner = owner;
        this.length = length;
        this.precision = Objects.requireNonNull(precision, "precision");
        this.owned = owned;
    }

    /** The engine this buffer belongs to. */
    public final BufferOwner owner() {
        return owner;
    }

    @Override
    public final long length() {
        return length;
    }

    @Override
    public final Precision precision() {
        return precision;
    }

    /** Bytes of memory behind this buffer (a quantized state's codes and scales: {@link QuantizedBuffer}). */
    public long byteSize() {
        return length * precision.bytes();
    }

    @Override
    public final boolean isOwnedByLibrary() {
        return owned;
    }

    @Override
    public final synchronized boolean isClosed() {
        return closed || owner.isClosed();
    }

    /** Throws {@link IllegalStateException} when this buffer or its optimizer is closed. */
    public final void ensureOpen() {
        if (isClosed()) {
            throw new IllegalStateException("buffer of " + length + " elements is closed"
                    + (owner.isClosed() ? " (its optimizer was closed)" : ""));
        }
    }

    /** What this buffer backs ("param 'w'", ...), or null when it backs no registered tensor. */
    public final synchronized String registeredAs() {
        return registeredAs;
    }

    /** Ends what {@link #markRegistered} began: the buffer no longer backs a tensor (a gradient replaced at unfreezing). */
    public final synchronized void unmarkRegistered() {
        registeredAs = null;
    }

    /** Marks this buffer as backing a registered tensor, which forbids closing it before its optimizer. */
    public final synchronized void markRegistered(String what) {
        if (registeredAs != null) {
            throw new IllegalStateException("buffer is already registered as " + registeredAs);
        }
        registeredAs = what;
    }

    @Override
    public final void copyFrom(float[] source) {
        Objects.requireNonNull(source, "source");
        requireWholeLength(source.length);
        copyFrom(source, 0, 0, source.length);
    }

    @Override
    public final void copyFrom(float[] source, int sourceOffset, long offset, int count) {
        Objects.requireNonNull(source, "source");
        Objects.checkFromIndexSize(sourceOffset, count, source.length);
        checkRange(offset, count);
        ensureOpen();
        write(source, sourceOffset, offset, count);
    }

    @Override
    public final void copyTo(float[] destination) {
        Objects.requireNonNull(destination, "destination");
        requireWholeLength(destination.length);
        copyTo(0, destination, 0, destination.length);
    }

    @Override
    public final void copyTo(long offset, float[] destination, int destinationOffset, int count) {
        Objects.requireNonNull(destination, "destination");
        Objects.checkFromIndexSize(destinationOffset, count, destination.length);
        checkRange(offset, count);
        ensureOpen();
        read(offset, destination, destinationOffset, count);
    }

    @Override
    public final void close() {
        synchronized (this) {
            if (closed || owner.isClosed()) {
                closed = true;
                return;
            }
            if (registeredAs != null) {
                throw new IllegalStateException("cannot close the buffer registered as " + registeredAs
                        + " while its optimizer is open; closing the optimizer frees it");
            }
            closed = true;
        }
        owner.onBufferClosed(this);
    }

    /**
     * The memory behind this buffer, so that registration can refuse two tensors that share bytes
     * (the same array wrapped twice, overlapping slices or device ranges): a step would update those
     * bytes twice. Null where it cannot be known, and for memory the library allocated itself, which
     * no other buffer can share.
     */
    public MemoryRange memoryRange() {
        return null;
    }

    /** Frees the memory (owned buffers only); called by the engine, exactly once. */
    public abstract void release();

    /** Stores floats, rounded to this buffer's precision ({@link Conversions}). */
    protected abstract void write(float[] source, int sourceOffset, long offset, int count);

    /** Loads elements widened to float32 (exact). */
    protected abstract void read(long offset, float[] destination, int destinationOffset, int count);

    private void requireWholeLength(int arrayLength) {
        if (arrayLength != length) {
            throw new IllegalArgumentException("array length " + arrayLength + " does not match buffer length " + length);
        }
    }

    private void checkRange(long offset, int count) {
        if (offset < 0 || offset > length - count) {
            throw new IndexOutOfBoundsException("range [" + offset + ", " + offset + " + " + count
                    + ") is outside the buffer of " + length + " elements");
        }
    }
}
