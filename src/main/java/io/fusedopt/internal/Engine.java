package io.fusedopt.internal;

import io.fusedopt.Backend;
import java.nio.FloatBuffer;

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
     * Prepares the update of one tensor. {@code slots} has the kernel's state-slot count; unused
     * slots are null. {@code scalars} and {@code flags} (one cell) are read on every run.
     */
    UpdateLaunch prepare(UpdateKernel kernel, AbstractTensorBuffer param, AbstractTensorBuffer grad,
                         AbstractTensorBuffer[] slots, float[] scalars, int[] flags);

    /** Waits until every queued update has finished. */
    void synchronize();

    /** Bytes of memory this engine currently owns. */
    long ownedBytes();

    /** Frees every owned buffer still open and the engine's own resources. Idempotent. */
    @Override
    void close();
}
