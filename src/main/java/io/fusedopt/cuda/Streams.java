package io.fusedopt.cuda;

import java.lang.reflect.Constructor;
import jcuda.driver.CUstream;

/** JCuda stream objects for raw CUstream handles (the public API takes handles as {@code long}). */
final class Streams {
    private Streams() {}

    /**
     * CU_STREAM_LEGACY, the explicit handle of the legacy default stream (JCudaDriver.CU_STREAM_LEGACY;
     * built here so that this class does not load JCuda's natives).
     */
    static final long LEGACY = 0x1;

    /**
     * The CUstream for a raw handle; 0 (the legacy default stream) becomes {@link #LEGACY}, never
     * null: some of JCuda's wrappers (cuGraphLaunch) throw NullPointerException for a null stream.
     * JCuda has a constructor from a native handle, but keeps it package-private; this is its only use.
     */
    /**
     * The raw handle of a JCuda stream (for libraries bound outside JCuda, NCCL): JCuda keeps it in
     * NativePointerObject, readable through its protected getNativePointer.
     */
    static long handleOf(CUstream stream) {
        try {
            java.lang.reflect.Method getter = jcuda.NativePointerObject.class.getDeclaredMethod("getNativePointer");
            getter.setAccessible(true);
            return (long) getter.invoke(stream);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot read the handle of a CUstream with this JCuda version: " + e, e);
        }
    }

    static CUstream of(long handle) {
        long raw = handle == 0 ? LEGACY : handle;
        try {
            Constructor<CUstream> constructor = CUstream.class.getDeclaredConstructor(long.class);
            constructor.setAccessible(true);
            return constructor.newInstance(raw);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot wrap CUstream handle 0x" + Long.toHexString(raw)
                    + " with this JCuda version: " + e, e);
        }
    }
}
