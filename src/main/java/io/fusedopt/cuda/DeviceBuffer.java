package io.fusedopt.cuda;

import io.fusedopt.internal.AbstractTensorBuffer;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

/** Device memory: allocated by the engine (owned) or wrapped from the caller (never freed here). */
final class DeviceBuffer extends AbstractTensorBuffer {
    private final CudaEngine engine;
    private final long address;

    DeviceBuffer(CudaEngine engine, long address, long length, boolean owned) {
        super(engine, length, owned);
        this.engine = engine;
        this.address = address;
    }

    long address() {
        return address;
    }

    @Override
    public boolean isDevice() {
        return true;
    }

    @Override
    protected void write(float[] source, int sourceOffset, long offset, int count) {
        if (count == 0) return;
        engine.makeCurrent();
        // From pageable memory the driver has consumed the source when the call returns.
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(address + offset * Float.BYTES),
                Pointer.to(source).withByteOffset((long) sourceOffset * Float.BYTES), (long) count * Float.BYTES,
                engine.stream()), "cuMemcpyHtoDAsync(" + count + " floats)");
    }

    @Override
    protected void read(long offset, float[] destination, int destinationOffset, int count) {
        if (count == 0) return;
        engine.makeCurrent();
        // To pageable memory the call returns when the data has arrived, after the stream's earlier work.
        Driver.check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(destination).withByteOffset((long) destinationOffset * Float.BYTES),
                Driver.pointerAt(address + offset * Float.BYTES), (long) count * Float.BYTES, engine.stream()),
                "cuMemcpyDtoHAsync(" + count + " floats)");
    }

    @Override
    public void release() {
        if (isOwnedByLibrary() && address != 0) {
            engine.free(address);
        }
    }
}
