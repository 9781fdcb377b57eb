package io.fusedopt;

import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.TensorNorms;

/**
 * Work in progress (issue 30): one {@link Adafactor} step in float32, plain Java, in the order the
 * backends are to follow (docs/algorithms.md, "Adafactor"), so that it can become the CPU
 * reference backend's unit. Every reduction is accumulated in double (a float32 square is exact
 * there), in a fixed order that does not depend on how a backend splits the work:
 * <ul>
 *   <li>RMS(p) and RMS(U): the whole tensor's sum of squares in the layer-wise kernels' order
 *       ({@link TensorNorms#sumOfSquares}: per 64 Ki chunk, lane l of 256 adds elements l, l + 256,
 *       ..., the pairwise tree; then the chunks' sums the same way);</li>
 *   <li>a row's sum of G^2 (over j) and a column's (over i): lane l of 256 adds indices l, l + 256,
 *       ... of the reduced index, then the pairwise tree
 *       ({@link GradientStatistics#chunkSumOfSquares(GradientStatistics.FloatSource, long, long, float, double[])});</li>
 *   <li>the sum of a matrix's row factors: the same lanes and tree over i
 *       ({@link GradientStatistics#totalOf(double[], int, int, int, double[])}).</li>
 * </ul>
 * Per-step scalars are computed in double from the float32 hyper-parameters and t, then rounded
 * once.
 */
final class AdafactorFloat32Reference {
    private AdafactorFloat32Reference() {}

    /** The state of one tensor: torch's {@code step}, {@code row_var}, {@code col_var} or {@code variance}. */
    static final class State {
        final long[] shape;
        final int rows, cols, matrices;
        long step;
        /** Rank >= 2: per matrix m of the leading dimensions, row_var[m * rows + i] and col_var[m * cols + j]. */
        final float[] rowVar, colVar;
        /** Rank 1: one value per element. */
        final float[] variance;

        State(long[] shape) {
            this.shape = shape.clone();
            long n = 1;
            for (long s : shape) n *= s;
            if (shape.length >= 2) {
                rows = (int) shape[shape.length - 2];
                cols = (int) shape[shape.length - 1];
                matrices = rows * cols == 0 ? 0 : (int) (n / ((long) rows * cols));
                rowVar = new float[matrices * rows];
                colVar = new float[matrices * cols];
                variance = null;
            } else {
                rows = cols = matrices = 0;
                rowVar = colVar = null;
                variance = new float[(int) n];
            }
        }

        boolean factored() {
            return variance == null;
        }
    }

    /** torch's lerp(a, b, w): a + w(b - a) for |w| &lt; 0.5, else b - (b - a)(1 - w), each as one FMA. */
    static float lerp(float a, float b, float w, float oneMinusW) {
        float diff = b - a;
        return Math.abs(w) < 0.5f ? Math.fma(w, diff, a) : Math.fma(-diff, oneMinusW, b);
    }

    /** One step of {@code config} on {@code param} (updated in place) with gradient {@code grad}. */
    static void step(Adafactor config, float[] param, float[] grad, State state) {
        int n = param.length;
        float lr = (float) config.learningRate();
        double beta2Decay = (float) config.beta2Decay();
        float eps1 = (float) config.eps1();
        double eps2 = (float) config.eps2();
        double d = (float) config.d();
        double weightDecay = (float) config.weightDecay();

        long t = ++state.step;
        double weight = Math.pow(t, beta2Decay);
        float w = (float) weight;
        float oneMinusW = (float) (1 - weight);
        double rho = Math.min(lr, 1 / Math.sqrt(t));
        float decay = (float) (1 - lr * weightDecay);
        float eps1Squared = (float) ((double) eps1 * eps1);

        float[] g = new float[n];
        for (int k = 0; k < n; k++) g[k] = config.maximize() ? -grad[k] : grad[k];
        double alpha = Math.max(eps2, Math.sqrt(TensorNorms.sumOfSquares(param) / n)) * rho;

        float[] u = new float[n];
        double[] lanes = new double[GradientStatistics.LANES];
        if (state.factored()) {
            int rows = state.rows, cols = state.cols;
            double[] rowFactors = new double[rows];
            for (int m = 0; m < state.matrices; m++) {
                int base = m * rows * cols;
                for (int i = 0; i < rows; i++) {
                    int rowStart = base + i * cols;
                    double sum = GradientStatistics.chunkSumOfSquares(j -> g[rowStart + (int) j], 0, cols, 1f, lanes);
                    int at = m * rows + i;
                    state.rowVar[at] = lerp(state.rowVar[at], (float) (sum / cols), w, oneMinusW);
                    rowFactors[i] = state.rowVar[at];
                }
                for (int j = 0; j < cols; j++) {
                    int column = base + j;
                    double sum = GradientStatistics.chunkSumOfSquares(i -> g[column + (int) i * cols], 0, rows, 1f, lanes);
                    int at = m * cols + j;
                    state.colVar[at] = lerp(state.colVar[at], (float) (sum / rows), w, oneMinusW);
                }
                // Math.max propagates NaN, as torch's clamp_min does.
                float rowMean = Math.max((float) (GradientStatistics.totalOf(rowFactors, 0, rows, 1, lanes) / rows), eps1);
                for (int i = 0; i < rows; i++) {
                    for (int j = 0; j < cols; j++) {
                        int k = base + i * cols + j;
                        float v = state.rowVar[m * rows + i] * state.colVar[m * cols + j] / rowMean;
                        u[k] = g[k] / (float) Math.sqrt(Math.max(v, eps1Squared));
                    }
                }
            }
        } else {
            for (int k = 0; k < n; k++) {
                state.variance[k] = lerp(state.variance[k], g[k] * g[k], w, oneMinusW);
                u[k] = g[k] / (float) Math.sqrt(Math.max(state.variance[k], eps1Squared));
            }
        }
        double denominator = Math.max(1, Math.sqrt(TensorNorms.sumOfSquares(u) / n) / d);
        float stepSize = (float) (-alpha / denominator);
        for (int k = 0; k < n; k++) param[k] = Math.fma(stepSize, u[k], param[k] * decay);
    }
}
