package io.fusedopt.cpu;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.BufferOwner;
import io.fusedopt.internal.QuantizedBuffer;

/** An 8-bit blockwise state on the heap: its codes and its absmax in two arrays, which the CPU step programs update in place. */
final class HostQuantizedBuffer extends QuantizedBuffer {
    private byte[] codes;
    private float[] absmax;

    HostQuantizedBuffer(BufferOwner owner, int length, CodeMap codeMap, float initialValue) {
        super(owner, length, codeMap);
        codes = new byte[length];
        absmax = new float[BlockwiseQuantization.blocks(length)];
        fill(initialValue);
    }

    /** One byte per element. */
    byte[] codes() {
        ensureOpen();
        return codes;
    }

    /** One float per block of {@link BlockwiseQuantization#BLOCK} elements. */
    float[] absmax() {
        ensureOpen();
        return absmax;
    }

    @Override
    public void readCodes(long from, byte[] destination, int offset, int count) {
        System.arraycopy(codes, (int) from, destination, offset, count);
    }

    @Override
    public void writeCodes(long from, byte[] source, int offset, int count) {
        System.arraycopy(source, offset, codes, (int) from, count);
    }

    @Override
    public void readAbsmax(int fromBlock, float[] destination, int offset, int count) {
        System.arraycopy(absmax, fromBlock, destination, offset, count);
    }

    @Override
    public void writeAbsmax(int fromBlock, float[] source, int offset, int count) {
        System.arraycopy(source, offset, absmax, fromBlock, count);
    }

    @Override
    public boolean isDevice() {
        return false;
    }

    @Override
    public void release() {
        codes = null; // heap memory: dropping the references frees it
        absmax = null;
    }
}
