package io.fusedopt.internal;

/**
 * Muon's exact-mode Newton-Schulz orthogonalization in float32, which the CPU reference, CPU_FAST
 * and CUDA backends reproduce bit for bit (docs/muon.md).
 *
 * <p>Every matrix product element is {@code acc = +0f; for k increasing: acc = fma(P[i][k], Q[k][j], acc)}:
 * one order, no split over k, starting at +0 so that the sign of a zero result is fixed. The
 * Gram matrix {@code X X^T} and the square {@code A A} of a symmetric A are symmetric element for
 * element in bits (element (j, i) uses the same products, fma being commutative in its factors,
 * in the same order), so a backend may compute the upper triangle and mirror it, or compute every
 * element: the bits are the same. How the products are computed is a {@link Products}; the rest
 * (normalization, transposition, the polynomial's elementwise operations) is here, once.
 */
public final class NewtonSchulz {
    private NewtonSchulz() {}

    /** The three products of an iteration; every element in the fixed k order. */
    public interface Products {
        /** {@code out = x x^T} for {@code x} m x n (row-major). */
        void gramOfRows(float[] x, int m, int n, float[] out);

        /** {@code out = s s} for a symmetric m x m {@code s}. */
        void symmetricSquare(float[] s, int m, float[] out);

        /** {@code out = p q} for {@code p} r x s and {@code q} s x t (row-major). */
        void product(float[] p, float[] q, int r, int s, int t, float[] out);
    }

    /** The products as plain loops (the reference backend's), the upper triangles mirrored. */
    public static final Products REFERENCE = new Products() {
        @Override
        public void gramOfRows(float[] x, int m, int n, float[] out) {
            NewtonSchulz.gramOfRows(x, m, n, out);
        }

        @Override
        public void symmetricSquare(float[] s, int m, float[] out) {
            NewtonSchulz.symmetricSquare(s, m, out);
        }

        @Override
        public void product(float[] p, float[] q, int r, int s, int t, float[] out) {
            NewtonSchulz.product(p, q, r, s, t, out);
        }
    };

    /** The arrays of one orthogonalization, grown to the largest matrix seen and reused. */
    public static final class Workspace {
        private float[] x = new float[0], next = new float[0], gram = new float[0], square = new float[0];

        void fit(int m, int n) {
            int elements = m * n;
            if (x.length < elements) {
                x = new float[elements];
                next = new float[elements];
            }
            if (gram.length < m * m) {
                gram = new float[m * m];
                square = new float[m * m];
            }
        }
    }

    /**
     * The orthogonalized {@code rows x cols} matrix {@code u} (row-major; not written) into
     * {@code out} in the same layout: transposed first when rows &gt; cols, divided by
     * {@code (float) max(sqrt(sumOfSquares), eps)} (NaN when the sum is NaN), then {@code steps}
     * iterations of {@code A = X X^T; B = fma(b, A, c * (A A)); X = fma(a, X, B X)}, transposed back.
     *
     * @param sumOfSquares the sum of the squares of {@code u}'s elements in double, as the step's norm
     *                     pass computes it (its order is the norm pass's; this method takes it as given)
     */
    public static void orthogonalize(float[] u, int rows, int cols, double sumOfSquares, float a, float b, float c,
                                     float eps, int steps, Products products, Workspace w, float[] out) {
        boolean transposed = rows > cols;
        int m = Math.min(rows, cols);
        int n = Math.max(rows, cols);
        w.fit(m, n);
        float norm = (float) Math.max(Math.sqrt(sumOfSquares), eps); // Math.max propagates NaN, as the device's does
        float[] x = w.x, next = w.next;
        if (transposed) {
            for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) x[j * rows + i] = u[i * cols + j] / norm;
        } else {
            for (int i = 0; i < m * n; i++) x[i] = u[i] / norm;
        }
        for (int step = 0; step < steps; step++) {
            products.gramOfRows(x, m, n, w.gram);
            products.symmetricSquare(w.gram, m, w.square);
            for (int i = 0; i < m * m; i++) w.square[i] = Math.fma(b, w.gram[i], c * w.square[i]);
            products.product(w.square, x, m, m, n, next);
            for (int i = 0; i < m * n; i++) next[i] = Math.fma(a, x[i], next[i]);
            float[] swap = x;
            x = next;
            next = swap;
        }
        if (transposed) {
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) out[j * m + i] = x[i * n + j];
        } else {
            System.arraycopy(x, 0, out, 0, m * n);
        }
    }

    /** {@link #orthogonalize(float[], int, int, double, float, float, float, float, int, Products, Workspace, float[])} into a new array with the reference products. */
    public static float[] orthogonalize(float[] u, int rows, int cols, double sumOfSquares, float a, float b, float c,
                                        float eps, int steps) {
        if (u.length != (long) rows * cols) {
            throw new IllegalArgumentException("u has " + u.length + " elements, not rows * cols = " + rows + " * " + cols);
        }
        float[] out = new float[u.length];
        orthogonalize(u, rows, cols, sumOfSquares, a, b, c, eps, steps, REFERENCE, new Workspace(), out);
        return out;
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
        product(p, q, s, t, out, 0, r);
    }

    /** Rows [rowFrom, rowTo) of {@link #product(float[], float[], int, int, int, float[])}. */
    public static void product(float[] p, float[] q, int s, int t, float[] out, int rowFrom, int rowTo) {
        for (int i = rowFrom; i < rowTo; i++) {
            for (int j = 0; j < t; j++) {
                float acc = 0f;
                for (int k = 0; k < s; k++) acc = Math.fma(p[i * s + k], q[k * t + j], acc);
                out[i * t + j] = acc;
            }
        }
    }
}
