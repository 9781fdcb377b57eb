package io.fusedopt.internal;

/**
 * Muon's exact-mode Newton-Schulz orthogonalization in float32, the definition the CPU reference,
 * CPU_FAST and CUDA backends are to reproduce bit for bit (work in progress: no backend runs it
 * yet; docs/muon.md, /work/notes/muon-status.md).
 *
 * <p>Every matrix product element is {@code acc = +0f; for k increasing: acc = fma(P[i][k], Q[k][j], acc)}:
 * one order, no split over k, starting at +0 so that the sign of a zero result is fixed. The
 * Gram matrix {@code X X^T} and the square {@code A A} of a symmetric A are symmetric element for
 * element in bits (element (j, i) uses the same products, fma being commutative in its factors,
 * in the same order), so only the upper triangle is computed and mirrored; backends may do the same.
 */
public final class NewtonSchulzReference {
    private NewtonSchulzReference() {}

    /**
     * The orthogonalized {@code rows x cols} matrix {@code u} (row-major; not written), in the same
     * layout: transposed first when rows &gt; cols, divided by {@code (float) max(sqrt(sumOfSquares), eps)},
     * then {@code steps} iterations of {@code A = X X^T; B = fma(b, A, c * (A A)); X = fma(a, X, B X)},
     * transposed back.
     *
     * @param sumOfSquares the sum of the squares of {@code u}'s elements in double, as the step's norm
     *                     pass computes it (its order is the norm pass's; this method takes it as given)
     */
    public static float[] orthogonalize(float[] u, int rows, int cols, double sumOfSquares,
                                        float a, float b, float c, double eps, int steps) {
        if (u.length != (long) rows * cols) {
            throw new IllegalArgumentException("u has " + u.length + " elements, not rows * cols = " + rows + " * " + cols);
        }
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        float norm = (float) Math.max(Math.sqrt(sumOfSquares), eps);
        float[] x = transposed ? transpose(u, rows, cols) : u.clone();
        for (int i = 0; i < x.length; i++) x[i] /= norm;

        float[] gram = new float[m * m];
        float[] square = new float[m * m];
        float[] next = new float[m * n];
        for (int step = 0; step < steps; step++) {
            gramOfRows(x, m, n, gram);
            symmetricSquare(gram, m, square);
            for (int i = 0; i < square.length; i++) square[i] = Math.fma(b, gram[i], c * square[i]);
            product(square, x, m, m, n, next);
            for (int i = 0; i < next.length; i++) next[i] = Math.fma(a, x[i], next[i]);
            float[] swap = x;
            x = next;
            next = swap;
        }
        return transposed ? transpose(x, m, n) : x;
    }

    /** {@code out = x x^T} for {@code x} m x n (row-major): the upper triangle in the fixed k order, mirrored. */
    public static void gramOfRows(float[] x, int m, int n, float[] out) {
        for (int i = 0; i < m; i++) {
            for (int j = i; j < m; j++) {
                float acc = 0f;
                for (int k = 0; k < n; k++) acc = Math.fma(x[i * n + k], x[j * n + k], acc);
                out[i * m + j] = acc;
                out[j * m + i] = acc;
            }
        }
    }

    /** {@code out = s s} for a symmetric m x m {@code s}: the upper triangle in the fixed k order, mirrored. */
    public static void symmetricSquare(float[] s, int m, float[] out) {
        for (int i = 0; i < m; i++) {
            for (int j = i; j < m; j++) {
                float acc = 0f;
                for (int k = 0; k < m; k++) acc = Math.fma(s[i * m + k], s[k * m + j], acc);
                out[i * m + j] = acc;
                out[j * m + i] = acc;
            }
        }
    }

    /** {@code out = p q} for {@code p} r x s and {@code q} s x t (row-major), every element in the fixed k order. */
    public static void product(float[] p, float[] q, int r, int s, int t, float[] out) {
        for (int i = 0; i < r; i++) {
            for (int j = 0; j < t; j++) {
                float acc = 0f;
                for (int k = 0; k < s; k++) acc = Math.fma(p[i * s + k], q[k * t + j], acc);
                out[i * t + j] = acc;
            }
        }
    }

    private static float[] transpose(float[] x, int rows, int cols) {
        float[] out = new float[x.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j];
        }
        return out;
    }
}
