package io.fusedopt.cuda;

import java.lang.reflect.Constructor;
import jcuda.driver.CUstream;

/** JCuda stream objects for raw CUstream handles (the public API takes handles as {@code long}). */
final class Streams {
    private Streams() {}

    /**
     * The CUstream for a raw handle, or null for 0 (the legacy default stream). JCuda has a
     * constructor from a native handle, but keeps it package-private; this is its only use.
     */
    static CUstream of(long handle) {
        if (handle == 0) return null;
        try {
            Constructor<CUstream> constructor = CUstream.class.getDeclaredConstructor(long.class);
            constructor.setAccessible(true);
            return constructor.newInstance(handle);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot wrap CUstream handle 0x" + Long.toHexString(handle)
                    + " with this JCuda version: " + e, e);
        }
    }
}
