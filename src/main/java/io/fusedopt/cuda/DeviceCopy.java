package io.fusedopt.cuda;

import jcuda.driver.JCudaDriver;

/**
 * Two device buffers and a device-to-device copy between them: the benchmarks' roofline (bytes read
 * plus written per second). Work goes to the engine's stream (the legacy default stream).
 */
public final class DeviceCopy implements AutoCloseable {
    private final CudaEngine engine;
    private final long source;
    private final long destination;
    private final long bytes;

    public DeviceCopy(int deviceOrdinal, long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes must be > 0, got " + bytes);
        this.engine = new CudaEngine(deviceOrdinal);
        this.bytes = bytes;
        long src = 0;
        try {
            engine.makeCurrent();
            src = Driver.allocate(bytes);
            this.destination = Driver.allocate(bytes);
        } catch (RuntimeException e) {
            if (src != 0) engine.free(src);
            engine.close();
            throw e;
        }
        this.source = src;
        Driver.check(JCudaDriver.cuMemsetD8(Driver.pointerAt(source), (byte) 1, bytes), "cuMemsetD8");
    }

    /** The device this runs on, in one line. */
    public String deviceDescription() {
        return engine.description();
    }

    /** Queues one copy of all the bytes. */
    public void copy() {
        engine.makeCurrent();
        Driver.check(JCudaDriver.cuMemcpyDtoDAsync(Driver.pointerAt(destination), Driver.pointerAt(source), bytes, engine.stream()),
                "cuMemcpyDtoDAsync");
    }

    public void synchronize() {
        engine.synchronize();
    }

    /** Bytes one copy moves: read plus written. */
    public long bytesMoved() {
        return 2 * bytes;
    }

    @Override
    public void close() {
        engine.free(source);
        engine.free(destination);
        engine.close();
    }
}
