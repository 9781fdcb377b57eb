package io.fusedopt.internal;

import io.fusedopt.Backend;
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

    /** New owned memory of {@code length} elements, every element set to {@code initialValue}. */
    AbstractTensorBuffer allocate(long length, float initialValue);

    /** Device memory the caller owns; never freed by the engine. */
    AbstractTensorBuffer wrapDevicePointer(long address, long length);

    /** Host memory the caller owns; never freed by the engine. */
    AbstractTensorBuffer wrapHost(FloatBuffer buffer);

    /**
     * Prepares one launch that updates all {@code tensors} with {@code kernel}: the work is laid
     * out once in a {@link SegmentTable}. Tensor i uses {@code groupScalars[tensors.get(i).group()]}
     * and the flag cell {@code groupFlags[...][0]}, read afresh on every run; at most
     * {@link SegmentTable#MAX_GROUPS} groups.
     */
    UpdateLaunch prepare(UpdateKernel kernel, List<TensorOperands> tensors, float[][] groupScalars,
                         int[][] groupFlags);

    /** Waits until every queued update has finished. */
    void synchronize();

    /** Bytes of memory this engine currently owns. */
    long ownedBytes();

    /** Frees every owned buffer still open and the engine's own resources. Idempotent. */
    @Override
    void close();
}
