package io.fusedopt.cuda;

import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.QuantizedBuffer;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

/**
 * An 8-bit blockwise state in device memory, one allocation: the codes (a byte per element) at
 * {@link #address()}, then the absmax (a float per block) at {@link #absmaxAddress()}, the codes'
 * length rounded up to 16 bytes further on, where the kernels find it (kernels/fusedopt_common.cuh,
 * FO_Q8).
 */
final class DeviceQuantizedBuffer extends QuantizedBuffer {
    /** The absmax follows the codes at this alignment (bytes). */
    static final int ABSMAX_ALIGNMENT = 16;
    private final CudaEngine engine;
    private final long address;

    DeviceQuantizedBuffer(CudaEngine engine, long address, long length, CodeMap codeMap) {
        super(engine, length, codeMap);
        this.engine = engine;
        this.address = address;
    }

    /** Bytes of one allocation holding {@code length} codes and their absmax. */
    static long allocationBytes(long length) {
        return absmaxOffset(length) + (long) Float.BYTES * ((length + 255) / 256);
    }

    private static long absmaxOffset(long length) {
        return (length + ABSMAX_ALIGNMENT - 1) / ABSMAX_ALIGNMENT * ABSMAX_ALIGNMENT;
    }

    /** Where the codes begin (the kernels' state pointer). */
    long address() {
        return address;
    }

    long absmaxAddress() {
        return address + absmaxOffset(length());
    }

    @Override
    public long byteSize() {
        return allocationBytes(length());
    }

    /** Sets every element to {@code initialValue} (at allocation). */
    void initialize(float initialValue) {
        fill(initialValue);
    }

    @Override
    public boolean isDevice() {
        return true;
    }

    @Override
    public void readCodes(long from, byte[] destination, int offset, int count) {
        if (count == 0) return;
        engine.synchronize(); // as DeviceBuffer.read: the copy must not be the call that waits for queued steps
        Driver.check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(destination).withByteOffset(offset), Driver.pointerAt(address + from),
                count, engine.stream()), "cuMemcpyDtoHAsync(" + count + " codes)");
    }

    @Override
    public void writeCodes(long from, byte[] source, int offset, int count) {
        if (count == 0) return;
        engine.makeCurrent();
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(address + from), Pointer.to(source).withByteOffset(offset),
                count, engine.stream()), "cuMemcpyHtoDAsync(" + count + " codes)");
    }

    @Override
    public void readAbsmax(int fromBlock, float[] destination, int offset, int count) {
        if (count == 0) return;
        engine.synchronize();
        Driver.check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(destination).withByteOffset((long) offset * Float.BYTES),
                Driver.pointerAt(absmaxAddress() + (long) fromBlock * Float.BYTES), (long) count * Float.BYTES, engine.stream()),
                "cuMemcpyDtoHAsync(" + count + " absmax)");
    }

    @Override
    public void writeAbsmax(int fromBlock, float[] source, int offset, int count) {
        if (count == 0) return;
        engine.makeCurrent();
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(absmaxAddress() + (long) fromBlock * Float.BYTES),
                Pointer.to(source).withByteOffset((long) offset * Float.BYTES), (long) count * Float.BYTES, engine.stream()),
                "cuMemcpyHtoDAsync(" + count + " absmax)");
    }

    @Override
    public void release() {
        if (address != 0) engine.free(address);
    }
}
