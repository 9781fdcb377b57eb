package io.fusedopt.internal;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/** An engine's ledger of the buffers it owns: what is still allocated, and how many bytes. Not thread-safe. */
public final class OwnedBuffers {
    private final Set<AbstractTensorBuffer> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private long bytes;

    public void add(AbstractTensorBuffer buffer) {
        if (live.add(buffer)) bytes += buffer.byteSize();
    }

    /** Releases one buffer that closed; wrapped (not owned) buffers are ignored. */
    public void release(AbstractTensorBuffer buffer) {
        if (live.remove(buffer)) {
            bytes -= buffer.byteSize();
            buffer.release();
        }
    }

    /** Releases every buffer still allocated (the engine is closing). */
    public void releaseAll() {
        live.forEach(AbstractTensorBuffer::release);
        live.clear();
        bytes = 0;
    }

    public long bytes() {
        return bytes;
    }
}
