package io.fusedopt.cuda;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.MemoryRange;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

/** Device memory: allocated by the engine (owned) or wrapped from the caller (never freed here). */
final class DeviceBuffer extends AbstractTensorBuffer {
    private final CudaEngine engine;
    private final long address;

    DeviceBuffer(CudaEngine engine, long address, long length, Precision precision, boolean owned) {
        super(engine, length, precision, owned);
        this.engine = engine;
        this.address = address;
    }

    long address() {
        return address;
    }

    @Override
    public MemoryRange memoryRange() {
        return MemoryRange.device(address, byteSize());
    }

    @Override
    public boolean isDevice() {
        return true;
    }

    @Override
    protected void write(float[] source, int sourceOffset, long offset, int count) {
        if (count == 0) return;
        engine.makeCurrent();
        long bytes = (long) count * precision().bytes();
        Pointer host;
        if (precision() == Precision.FP32) {
            host = Pointer.to(source).withByteOffset((long) sourceOffset * Float.BYTES);
        } else {
            short[] bits = new short[count];
            for (int i = 0; i < count; i++) {
                bits[i] = Conversions.narrow(precision(), source[sourceOffset + i]);
            }
            host = Pointer.to(bits);
        }
        // From pageable memory the driver has consumed the source when the call returns.
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(address + offset * precision().bytes()), host, bytes,
                engine.stream()), "cuMemcpyHtoDAsync(" + count + " " + precision() + ")");
    }

    @Override
    protected void read(long offset, float[] destination, int destinationOffset, int count) {
        if (count == 0) return;
        long bytes = (long) count * precision().bytes();
        // Wait for the stream's earlier work first: JCuda pins a Java array for the whole copy call
        // (GetPrimitiveArrayCritical, which holds off the garbage collector), so the copy must not
        // be the call that waits for queued steps. To pageable memory it returns when the data has arrived.
        engine.synchronize();
        if (precision() == Precision.FP32) {
            Driver.check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(destination).withByteOffset((long) destinationOffset * Float.BYTES),
                    Driver.pointerAt(address + offset * Float.BYTES), bytes, engine.stream()), "cuMemcpyDtoHAsync(" + count + " floats)");
            return;
        }
        short[] bits = new short[count];
        Driver.check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(bits), Driver.pointerAt(address + offset * precision().bytes()), bytes,
                engine.stream()), "cuMemcpyDtoHAsync(" + count + " " + precision() + ")");
        for (int i = 0; i < count; i++) {
            destination[destinationOffset + i] = Conversions.widen(precision(), bits[i]);
        }
    }

    @Override
    public void release() {
        if (isOwnedByLibrary() && address != 0) {
            engine.free(address);
        }
    }
}
