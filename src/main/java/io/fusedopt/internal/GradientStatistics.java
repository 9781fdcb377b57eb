package io.fusedopt.internal;

/**
 * The sum of squares of the gradient in a fixed order, so that the CPU and every GPU get the same
 * bits (fusedopt_grad_stats and fusedopt_finalize_step in kernels/control.cu do exactly this):
 * <ol>
 *   <li>per chunk of the segment table, lane {@code l} of {@link #LANES} adds, in double, the
 *       squares of the elements {@code start + l, start + l + LANES, ...} in order;</li>
 *   <li>the lanes are summed pairwise by {@link #treeSum}, giving the chunk's partial sum;</li>
 *   <li>the partial sums of all chunks (launch by launch, chunk by chunk) are summed the same way:
 *       lane {@code l} adds partials {@code l, l + LANES, ...}, then the tree.</li>
 * </ol>
 * Squares of float32 values are exact in double and the sum cannot overflow for finite inputs,
 * so a non-finite total means a non-finite gradient element.
 */
public final class GradientStatistics {
    private GradientStatistics() {}

    /** FO_LANES: threads of one statistics block. */
    public static final int LANES = 256;

    /** A gradient element as float32 (widened from its storage format). */
    @FunctionalInterface
    public interface FloatSource {
        float get(long index);
    }

    /**
     * The partial sum of chunk [from, to): squares of {@code grad} elements, each first multiplied by
     * {@code invGradScale} when that is not 1. {@code lanes} is scratch of {@link #LANES} doubles.
     */
    public static double chunkSumOfSquares(FloatSource grad, long from, long to, float invGradScale, double[] lanes) {
        boolean unscale = invGradScale != 1.0f;
        int used = lanesUsed(to - from);
        for (int l = 0; l < used; l++) {
            double sum = 0.0;
            for (long k = from + l; k < to; k += LANES) {
                float g = grad.get(k);
                if (unscale) g = g * invGradScale;
                double x = g;
                sum = sum + x * x;
            }
            lanes[l] = sum;
        }
        return treeSum(lanes, used);
    }

    /**
     * {@link #chunkSumOfSquares} of {@code values[0..n)} (no unscaling), from an array: walking the
     * values front to back gives each lane its elements {@code l, l + LANES, ...} in order.
     */
    public static double chunkSumOfSquares(float[] values, int n, double[] lanes) {
        return chunkSumOfSquares(values, 0, n, lanes);
    }

    /** {@link #chunkSumOfSquares(float[], int, double[])} of the chunk {@code values[from..from + n)}. */
    public static double chunkSumOfSquares(float[] values, int from, int n, double[] lanes) {
        int used = lanesUsed(n);
        java.util.Arrays.fill(lanes, 0, used, 0.0);
        for (int start = 0; start < n; start += LANES) {
            int m = Math.min(LANES, n - start);
            for (int l = 0; l < m; l++) {
                double x = values[from + start + l];
                lanes[l] = lanes[l] + x * x;
            }
        }
        return treeSum(lanes, used);
    }

    /** How many lanes of a chunk of {@code elements} elements hold any: the others' sums are 0. */
    public static int lanesUsed(long elements) {
        return (int) Math.min(LANES, elements);
    }

    /**
     * The position of each chunk's partial sum in the total's order, for the chunks of
     * {@code batches} as the step programs walk them (batch after batch, each batch's tensors in
     * order, each tensor's chunks of {@link SegmentTable#CHUNK_ELEMENTS} in order): the tensors in
     * registration order ({@link TensorOperands#registrationOrder}), each tensor's chunks in order.
     * The total then depends on the registered tensors only, not on how they are grouped into
     * launches: a sharded step (docs/sharding.md) adds every rank's partial sums in the same order.
     *
     * @throws IllegalArgumentException when the registration orders are not 0 to n-1, each once
     */
    public static int[] registrationPositions(java.util.List<KernelBatch> batches) {
        int tensors = 0;
        for (KernelBatch b : batches) tensors += b.tensors().size();
        long[] chunksOf = new long[tensors];
        boolean[] seen = new boolean[tensors];
        for (KernelBatch b : batches) {
            for (TensorOperands t : b.tensors()) {
                int order = t.registrationOrder();
                if (order < 0 || order >= tensors || seen[order]) {
                    throw new IllegalArgumentException("registration order " + order + " is not one of 0 to " + (tensors - 1) + ", once each");
                }
                seen[order] = true;
                chunksOf[order] = SegmentTable.chunksOf(t.param().length());
            }
        }
        long[] first = new long[tensors + 1];
        for (int i = 0; i < tensors; i++) first[i + 1] = first[i] + chunksOf[i];
        int[] positions = new int[Math.toIntExact(first[tensors])];
        int c = 0;
        for (KernelBatch b : batches) {
            for (TensorOperands t : b.tensors()) {
                for (long k = 0; k < chunksOf[t.registrationOrder()]; k++) positions[c++] = (int) (first[t.registrationOrder()] + k);
            }
        }
        return positions;
    }

    /** The sum of {@code count} partial sums in the finalize kernel's order. */
    public static double totalOf(double[] partials, int count, double[] lanes) {
        return totalOf(partials, 0, count, 1, lanes);
    }

    /**
     * The sum of the {@code count} partial sums {@code partials[from + i * stride]} in the finalize
     * kernel's order: lane {@code l} adds partials {@code l, l + LANES, ...}, then the tree (the
     * lanes past {@code count} hold +0.0, see {@link #treeSum(double[], int)}).
     */
    public static double totalOf(double[] partials, int from, int count, int stride, double[] lanes) {
        int used = lanesUsed(count);
        for (int l = 0; l < used; l++) {
            double sum = 0.0;
            for (int i = l; i < count; i += LANES) sum = sum + partials[from + i * stride];
            lanes[l] = sum;
        }
        return treeSum(lanes, used);
    }

    /** Pairwise sum of {@link #LANES} values, halving the stride (fo_tree_sum); overwrites lanes. */
    public static double treeSum(double[] lanes) {
        return treeSum(lanes, LANES);
    }

    /**
     * {@link #treeSum(double[])} of lanes of which only the first {@code used} may be non-zero (the
     * others are not read): the same bits, since every lane is a sum of squares (+0.0, positive,
     * infinite or NaN), to which adding the +0.0 of an unused lane changes nothing. A chunk of a
     * small tensor so costs its elements, not 2 * LANES additions.
     */
    public static double treeSum(double[] lanes, int used) {
        for (int offset = LANES / 2; offset > 0; offset >>= 1) {
            // used <= 2 * offset here, so l + offset < used implies l < offset.
            for (int l = 0; l + offset < used; l++) lanes[l] = lanes[l] + lanes[l + offset];
            used = Math.min(used, offset);
        }
        return used > 0 ? lanes[0] : 0.0;
    }
}
