package io.fusedopt.internal;

import io.fusedopt.Backend;
import io.fusedopt.Precision;
import java.nio.FloatBuffer;
import java.util.List;

/**
 * What a backend provides to {@link io.fusedopt.DeviceOptimizer}: memory and prepared updates. An
 * engine owns every buffer it allocates and frees those still open when it closes.
 */
public interface Engine extends BufferOwner, AutoCloseable {

    Backend backend();

    /** A one-line description of the device (for logs and errors). */
    String description();

    /**
     * Why this engine cannot run matrix products on cuBLAS (Muon's fast mode), in one sentence, or
     * null when it can: only the CUDA backend with cuBLAS loaded can.
     */
    default String cublasUnavailableReason() {
        return "the " + backend() + " backend has no cuBLAS: Muon's fast mode runs on the CUDA backend only (exact mode,"
                + " Muon.Numerics.EXACT, runs on every backend, bit for bit alike)";
    }

    /** New owned memory of {@code length} elements, every element set to {@code initialValue} (rounded). */
    AbstractTensorBuffer allocate(long length, Precision precision, float initialValue);

    /**
     * A new owned 8-bit blockwise state ({@link QuantizedBuffer}) of {@code length} elements whose
     * codes index {@code map}, every element set to {@code initialValue} (quantized).
     */
    AbstractTensorBuffer allocateQuantized(long length, BlockwiseQuantization.CodeMap map, float initialValue);

    /** Device memory the caller owns; never freed by the engine. */
    AbstractTensorBuffer wrapDevicePointer(long address, long length, Precision precision);

    /** Host memory the caller owns (float32); never freed by the engine. */
    AbstractTensorBuffer wrapHost(FloatBuffer buffer);

    /**
     * Prepares the step over {@code batches}, whose tensors index groups of {@code groups}; the
     * program reads the table afresh on every run after {@link StepProgram#groupsChanged()}.
     */
    StepProgram prepare(List<KernelBatch> batches, GroupTable groups);

    /**
     * Prepares setting every element of {@code buffers} (buffers of this engine, any formats) to
     * +0, which is all-zero bits in every format: on CUDA one launch per {@link ZeroFill#run()},
     * over a table kept in device memory until the fill is closed or the engine closes.
     */
    ZeroFill prepareZeroFill(List<AbstractTensorBuffer> buffers);

    /** A prepared zero fill ({@link #prepareZeroFill}). */
    interface ZeroFill extends AutoCloseable {
        /** Zeroes the buffers (CUDA: queues it on the engine's stream). */
        void run();

        /** Frees what the fill holds (not the buffers). Idempotent. */
        @Override
        void close();
    }

    /** Waits until every queued update has finished. */
    void synchronize();

    /** Bytes of memory this engine currently owns. */
    long ownedBytes();

    /** Frees every owned buffer still open and the engine's own resources. Idempotent. */
    @Override
    void close();
}
