package io.fusedopt.internal;

import io.fusedopt.Precision;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;

/**
 * An 8-bit blockwise state tensor ({@link io.fusedopt.StateQuantization#BLOCKWISE_8BIT}): one code
 * byte per element and one float32 absmax per block of {@link BlockwiseQuantization#BLOCK}
 * elements, decoded through one {@link CodeMap}. As a {@link io.fusedopt.TensorBuffer} it reads and
 * writes float32 values ({@link #precision()} is FP32): a read dequantizes, a write quantizes every
 * block it touches afresh (a block written in part is first read back, so its other elements keep
 * their values as decoded). The step programs and checkpoints move the codes and absmax themselves.
 */
public abstract class QuantizedBuffer extends AbstractTensorBuffer {
    private static final int BLOCK = BlockwiseQuantization.BLOCK;
    private final CodeMap codeMap;

    protected QuantizedBuffer(BufferOwner owner, long length, CodeMap codeMap) {
        super(owner, length, Precision.FP32, true);
        if (length > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a quantized state holds at most " + Integer.MAX_VALUE + " elements, got " + length);
        }
        this.codeMap = codeMap;
    }

    /** The map its codes index. */
    public final CodeMap codeMap() {
        return codeMap;
    }

    /** Blocks of {@link BlockwiseQuantization#BLOCK} elements (the last may be partial). */
    public final int blocks() {
        return BlockwiseQuantization.blocks((int) length());
    }

    /** The codes (one byte per element) and absmax (a float per block). */
    @Override
    public long byteSize() {
        return length() + (long) Float.BYTES * blocks();
    }

    /** Codes of elements [from, from + count) into {@code destination[offset...]}. */
    public abstract void readCodes(long from, byte[] destination, int offset, int count);

    /** Stores codes of elements [from, from + count) from {@code source[offset...]}. */
    public abstract void writeCodes(long from, byte[] source, int offset, int count);

    /** The absmax of blocks [fromBlock, fromBlock + count) into {@code destination[offset...]}. */
    public abstract void readAbsmax(int fromBlock, float[] destination, int offset, int count);

    /** Stores the absmax of blocks [fromBlock, fromBlock + count) from {@code source[offset...]}. */
    public abstract void writeAbsmax(int fromBlock, float[] source, int offset, int count);

    /** Sets every element to {@code value}: each block's absmax {@code |value|}, every code that of {@code value} in it. */
    protected final void fill(float value) {
        int n = (int) length();
        if (n == 0) return;
        float[] block = new float[BLOCK];
        java.util.Arrays.fill(block, value);
        byte[] codes = new byte[BLOCK];
        float absmax = BlockwiseQuantization.quantizeBlock(block, 0, BLOCK, codeMap, codes, 0);
        byte[] allCodes = new byte[n];
        for (int i = 0; i < n; i++) allCodes[i] = codes[0];
        float[] scales = new float[blocks()];
        java.util.Arrays.fill(scales, absmax);
        writeCodes(0, allCodes, 0, n);
        writeAbsmax(0, scales, 0, scales.length);
    }

    @Override
    protected final void read(long offset, float[] destination, int destinationOffset, int count) {
        if (count == 0) return;
        int firstBlock = (int) (offset / BLOCK);
        int lastBlock = (int) ((offset + count - 1) / BLOCK);
        int from = firstBlock * BLOCK;
        int to = (int) Math.min(length(), (long) (lastBlock + 1) * BLOCK);
        byte[] codes = new byte[to - from];
        float[] absmax = new float[lastBlock - firstBlock + 1];
        readCodes(from, codes, 0, codes.length);
        readAbsmax(firstBlock, absmax, 0, absmax.length);
        for (int i = 0; i < count; i++) {
            int k = (int) (offset + i) - from;
            destination[destinationOffset + i] = codeMap.value(codes[k] & 0xFF) * absmax[k / BLOCK];
        }
    }

    @Override
    protected final void write(float[] source, int sourceOffset, long offset, int count) {
        if (count == 0) return;
        int firstBlock = (int) (offset / BLOCK);
        int lastBlock = (int) ((offset + count - 1) / BLOCK);
        int from = firstBlock * BLOCK;
        int to = (int) Math.min(length(), (long) (lastBlock + 1) * BLOCK);
        float[] values = new float[to - from];
        read(from, values, 0, values.length); // the blocks' other elements, as decoded
        System.arraycopy(source, sourceOffset, values, (int) offset - from, count);
        byte[] codes = new byte[values.length];
        float[] absmax = new float[lastBlock - firstBlock + 1];
        for (int b = 0; b < absmax.length; b++) {
            int first = b * BLOCK;
            absmax[b] = BlockwiseQuantization.quantizeBlock(values, first, Math.min(BLOCK, values.length - first), codeMap, codes, first);
        }
        writeCodes(from, codes, 0, codes.length);
        writeAbsmax(firstBlock, absmax, 0, absmax.length);
    }
}
