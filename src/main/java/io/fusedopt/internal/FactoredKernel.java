package io.fusedopt.internal;

import io.fusedopt.Precision;
import io.fusedopt.cpu.VectorUpdate;
import java.nio.FloatBuffer;

/**
 * An update kernel whose second moment of a tensor of rank &gt;= 2 is factored (Adafactor): per
 * matrix of the last two dimensions, one state value per row and one per column, and a step that
 * needs sums over rows, over columns and over the whole tensor before any element is updated. A
 * step therefore runs each of its tensors whole, not chunk by chunk ({@link #step}; on the host
 * {@link FactoredStep}), in passes whose reductions have a fixed order that does not depend on how
 * a backend splits the work. Each sum is accumulated in double (a float32 square is exact there):
 * <ul>
 *   <li>a row's or a column's sum of squares ({@link #rowSumOfSquares}, {@link #columnSumOfSquares})
 *       and a sum of R values ({@link #sum}): lane l of {@link GradientStatistics#LANES} adds the
 *       reduced index l, l + LANES, ..., then the lanes' pairwise tree
 *       ({@link GradientStatistics#treeSum});</li>
 *   <li>a whole tensor's sum of squares ({@link #sumOfSquares}): the layer-wise kernels' order,
 *       per 2^16-element chunk in those lanes, then the chunks' sums the same way
 *       ({@link TensorNorms#sumOfSquares}).</li>
 * </ul>
 * Its state slots hold the per-element state of a one-dimensional tensor (slot 0) or the row and
 * column factors of a higher-rank one (slots 1 and 2), the others null
 * ({@link io.fusedopt.internal.Algorithm#stateKinds}). It has no chunk-wise update:
 * {@link #reference} and {@link #vectorUpdate} refuse.
 */
public abstract class FactoredKernel extends UpdateKernel {
    /** Its launches are its own ({@code FO_FACTORED_KERNELS}): no entry point for 16-bit operands only. */
    @Override
    public final boolean hasNarrowEntryPoint() {
        return false;
    }


    /**
     * @see UpdateKernel#UpdateKernel(String, String, String, int, int)
     */
    protected FactoredKernel(String name, String family, String entryPoint, int scalarCount) {
        super(name, family, entryPoint, MAX_STATE_SLOTS, scalarCount);
    }

    /** One whole tensor as a factored step sees it: float32 arrays of its operands and its matrix layout. */
    public static final class Tensor {
        /** The param (the fp32 master where there is one), updated in place. */
        public final float[] param;
        /** The gradient, unscaled and clipped by the step's factors; the step may overwrite it. */
        public final float[] grad;
        /** Per state slot its values, null where the tensor keeps no such state. */
        public final float[][] slots;
        /** The elements. */
        public final int length;
        /** Rank &gt;= 2: the number of R x C matrices of the last two dimensions, R and C; all 0 for a vector. */
        public final int matrices, rows, cols;
        /** Scratch of {@code length} floats (the per-element update) and of the lanes. */
        public final float[] update;
        private final Precision statePrecision;
        private final double[] lanes = new double[GradientStatistics.LANES];
        private double[] chunkSums = new double[0];

        /**
         * @param shape          the tensor's shape ({@code [length]} for a vector); the arrays are at
         *                       least {@code length} long (slots: their state's length)
         * @param statePrecision the storage format of its states ({@link #stored})
         */
        public Tensor(long[] shape, int length, float[] param, float[] grad, float[][] slots, float[] update,
                      Precision statePrecision) {
            this.length = length;
            this.statePrecision = statePrecision;
            this.param = param;
            this.grad = grad;
            this.slots = slots;
            this.update = update;
            if (shape.length >= 2) {
                rows = (int) shape[shape.length - 2];
                cols = (int) shape[shape.length - 1];
                matrices = rows == 0 || cols == 0 ? 0 : length / (rows * cols);
            } else {
                rows = cols = matrices = 0;
            }
        }

        /** Scratch for the lanes of a fixed-order sum. */
        public double[] lanes() {
            return lanes;
        }

        /**
         * {@code value} as its state's storage keeps it (rounded to nearest to a 16-bit format): a
         * value the step stores and reads back, as the device's block does with a factor.
         */
        public float stored(float value) {
            return statePrecision == Precision.FP32 ? value : Conversions.widen(statePrecision, Conversions.narrow(statePrecision, value));
        }

        /** Whether its second moment is factored (rank &gt;= 2). */
        public boolean factored() {
            return slots[0] == null;
        }
    }

    /**
     * One step of one whole tensor with the step's scalars {@code s} (from {@link #scalars}, for
     * the tensor's own step) and flags: the param and the states in place.
     */
    public abstract void step(Tensor tensor, float[] s, int flags);

    /** The sum of squares of {@code values[rowStart, rowStart + cols)} in the lanes' order over the column index. */
    protected static double rowSumOfSquares(float[] values, int rowStart, int cols, double[] lanes) {
        return GradientStatistics.chunkSumOfSquares(j -> values[rowStart + (int) j], 0, cols, 1f, lanes);
    }

    /** The sum of squares of the column {@code values[columnStart + i * cols]}, i in [0, rows), in the lanes' order over i. */
    protected static double columnSumOfSquares(float[] values, int columnStart, int rows, int cols, double[] lanes) {
        return GradientStatistics.chunkSumOfSquares(i -> values[columnStart + (int) i * cols], 0, rows, 1f, lanes);
    }

    /** The sum of {@code values[from, from + count)} in the lanes' order. */
    protected static double sum(float[] values, int from, int count, double[] lanes) {
        int used = GradientStatistics.lanesUsed(count);
        for (int l = 0; l < used; l++) {
            double total = 0.0;
            for (int i = l; i < count; i += GradientStatistics.LANES) total = total + values[from + i];
            lanes[l] = total;
        }
        return GradientStatistics.treeSum(lanes, used);
    }

    /** The sum of squares of {@code tensor}'s first {@code length} values of {@code values} in the layer-wise order ({@link TensorNorms#sumOfSquares}). */
    protected static double sumOfSquares(float[] values, Tensor tensor) {
        int chunk = (int) SegmentTable.CHUNK_ELEMENTS;
        int chunks = (tensor.length + chunk - 1) / chunk;
        if (tensor.chunkSums.length < chunks) tensor.chunkSums = new double[chunks];
        for (int c = 0; c < chunks; c++) {
            tensor.chunkSums[c] = GradientStatistics.chunkSumOfSquares(i -> values[(int) i], (long) c * chunk,
                    Math.min(tensor.length, (long) (c + 1) * chunk), 1f, tensor.lanes);
        }
        return GradientStatistics.totalOf(tensor.chunkSums, 0, chunks, 1, tensor.lanes);
    }

    /** A factored kernel updates whole tensors ({@link #step}): there is no chunk-wise update. */
    @Override
    public final void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
        throw new UnsupportedOperationException(name() + " updates whole tensors (FactoredKernel.step), not chunks");
    }

    /** A factored kernel updates whole tensors ({@link #step}): there is no chunk-wise update. */
    @Override
    protected final VectorUpdate newVectorUpdate() {
        throw new UnsupportedOperationException(name() + " updates whole tensors (FactoredKernel.step), not chunks");
    }
}
