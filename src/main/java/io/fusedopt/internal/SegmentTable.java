package io.fusedopt.internal;

/**
 * How one launch divides the work over many tensors: every tensor is cut into chunks of
 * {@link #CHUNK_ELEMENTS} elements (the last one shorter), and each chunk is one unit of work for
 * one thread block (CUDA) or one loop (CPU). A 1-element tensor is one chunk; a tensor of more than
 * 2^31 elements is many, with 64-bit starts; an empty tensor has none. Built once when the set of
 * tensors is fixed (at the first step) and, on CUDA, kept in device memory, so the table has no
 * size limit beyond device memory (no kernel-argument pages as in PyTorch's multi_tensor_apply).
 * Mirrors FO_CHUNK_ELEMENTS and FoChunk in kernels/fusedopt_common.cuh.
 */
public final class SegmentTable {
    /** Elements per chunk (FO_CHUNK_ELEMENTS). */
    public static final long CHUNK_ELEMENTS = 1L << 16;

    private final long[] lengths;
    private final int[] chunkTensor;
    private final long[] chunkStart;

    private SegmentTable(long[] lengths, int[] chunkTensor, long[] chunkStart) {
        this.lengths = lengths;
        this.chunkTensor = chunkTensor;
        this.chunkStart = chunkStart;
    }

    /** The table for tensors of these lengths, in this order. */
    public static SegmentTable of(long[] lengths) {
        long total = 0;
        for (int t = 0; t < lengths.length; t++) {
            if (lengths[t] < 0) throw new IllegalArgumentException("tensor " + t + " has negative length " + lengths[t]);
            total += chunksOf(lengths[t]);
        }
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(total + " chunks do not fit one launch (at most " + (Integer.MAX_VALUE - 8) + ")");
        }
        int[] tensor = new int[(int) total];
        long[] start = new long[(int) total];
        int c = 0;
        for (int t = 0; t < lengths.length; t++) {
            for (long s = 0; s < lengths[t]; s += CHUNK_ELEMENTS) {
                tensor[c] = t;
                start[c] = s;
                c++;
            }
        }
        return new SegmentTable(lengths.clone(), tensor, start);
    }

    /** The chunks of a tensor of {@code length} elements: its length over {@link #CHUNK_ELEMENTS}, rounded up. */
    public static long chunksOf(long length) {
        return (length + CHUNK_ELEMENTS - 1) / CHUNK_ELEMENTS;
    }

    public int tensorCount() {
        return lengths.length;
    }

    public long length(int tensor) {
        return lengths[tensor];
    }

    public int chunkCount() {
        return chunkTensor.length;
    }

    /** The tensor chunk {@code c} belongs to. */
    public int tensor(int c) {
        return chunkTensor[c];
    }

    /** The first element of chunk {@code c}. */
    public long start(int c) {
        return chunkStart[c];
    }

    /** One past the last element of chunk {@code c}. */
    public long end(int c) {
        return Math.min(chunkStart[c] + CHUNK_ELEMENTS, lengths[chunkTensor[c]]);
    }
}
