package io.fusedopt;

/**
 * A one-dimensional buffer that a {@link DeviceOptimizer} reads or updates: device memory on
 * the CUDA backend, host memory on the CPU backend. Elements are stored in the buffer's
 * {@link #precision()} and copied as float32: copies in round to nearest even, copies out are exact. Lengths and offsets are {@code long}, so device
 * buffers may hold more than 2^31 elements; the copy methods move at most one Java array at a time.
 *
 * <p>Ownership: a buffer from {@link DeviceOptimizer#allocate} is owned by the library and freed by
 * {@link #close()} or, at the latest, when its optimizer closes. A buffer that wraps memory the
 * caller owns ({@link DeviceOptimizer#wrapDevicePointer}, {@link DeviceOptimizer#wrapHost}) is never
 * freed by the library; closing it only detaches it. A buffer registered in a parameter group
 * cannot be closed before its optimizer, and no method may be called on a closed buffer
 * ({@link IllegalStateException}).
 *
 * <p>Copies between host arrays and device buffers are synchronous: when they return, the data has
 * arrived, and they see every update an earlier {@link DeviceOptimizer#step()} queued.
 */
public interface TensorBuffer extends AutoCloseable {

    /** Number of elements. */
    long length();

    /** The storage format of the elements. */
    Precision precision();

    /** True for device memory (CUDA backend), false for host memory. */
    boolean isDevice();

    /** True when the library allocated this memory and frees it; false for wrapped caller memory. */
    boolean isOwnedByLibrary();

    /** True after {@link #close()} or after the owning optimizer closed. */
    boolean isClosed();

    /** Copies all of {@code source} into this buffer; the lengths must be equal. */
    void copyFrom(float[] source);

    /** Copies {@code count} elements of {@code source} from {@code sourceOffset} to this buffer at {@code offset}. */
    void copyFrom(float[] source, int sourceOffset, long offset, int count);

    /** Copies this whole buffer into {@code destination}; the lengths must be equal. */
    void copyTo(float[] destination);

    /** Copies {@code count} elements of this buffer from {@code offset} into {@code destination} at {@code destinationOffset}. */
    void copyTo(long offset, float[] destination, int destinationOffset, int count);

    /** A new array with this buffer's contents; the length must fit a Java array. */
    default float[] toArray() {
        long n = length();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("a buffer of " + n + " elements does not fit one Java array; use copyTo with ranges");
        }
        float[] out = new float[(int) n];
        copyTo(out);
        return out;
    }

    /** Frees library-owned memory, or detaches wrapped memory. Idempotent. */
    @Override
    void close();
}
