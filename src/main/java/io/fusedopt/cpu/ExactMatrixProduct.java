package io.fusedopt.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float32 matrix product of CPU_FAST's Newton-Schulz iteration ({@link FastMatrixProducts}):
 * {@code out = p q} with the bits of
 * {@link io.fusedopt.internal.NewtonSchulz#product(float[], float[], int, int, int, float[])}: each
 * output element is {@code acc = +0; for k increasing: acc = fma(p[i][k], q[k][j], acc)}.
 *
 * <p>Each vector lane owns one output element, so a lane-wise fma over k in order is the
 * reference's sequence: a register tile of {@value #ROWS} rows by two vectors of columns
 * broadcasts {@code p[i][k]} and loads the row {@code q[k][j..]}; columns past the last full vector
 * of a panel take the scalar loop (the same operations). For the caches, k runs in blocks of
 * {@value #K_BLOCK} and the columns in panels of {@value #COLUMN_PANEL} (a block of q stays in the
 * L2 cache while the rows pass over it): between two k blocks an element's float32 accumulator is
 * stored in {@code out} and loaded back, which changes no bit, so the order over k is still the
 * reference's.
 */
final class ExactMatrixProduct {
    private ExactMatrixProduct() {}

    private static final VectorSpecies<Float> SPECIES = VectorKernels.SPECIES;
    private static final int ROWS = 4;
    private static final int K_BLOCK = 256;
    private static final int COLUMN_PANEL = 512;

    /**
     * Rows {@code [rowFrom, rowTo)} of {@code out = p q}, {@code p} r x s, {@code q} s x t,
     * row-major (rows of out are independent: workers may take disjoint ranges).
     */
    static void product(float[] p, float[] q, int s, int t, float[] out, int rowFrom, int rowTo) {
        if (s == 0) { // no k: every element is the accumulator's +0
            java.util.Arrays.fill(out, rowFrom * t, rowTo * t, 0f);
            return;
        }
        int width = 2 * SPECIES.length();
        for (int kFrom = 0; kFrom < s; kFrom += K_BLOCK) {
            int kTo = Math.min(s, kFrom + K_BLOCK);
            boolean first = kFrom == 0;
            for (int panel = 0; panel < t; panel += COLUMN_PANEL) {
                int panelEnd = Math.min(t, panel + COLUMN_PANEL);
                int vectorEnd = panel + (panelEnd - panel) / width * width;
                int i = rowFrom;
                for (; i + ROWS <= rowTo; i += ROWS) {
                    for (int j = panel; j < vectorEnd; j += width) tile(p, q, s, t, out, i, j, kFrom, kTo, first);
                    for (int ii = i; ii < i + ROWS; ii++) elements(p, q, s, t, out, ii, vectorEnd, panelEnd, kFrom, kTo, first);
                }
                for (; i < rowTo; i++) elements(p, q, s, t, out, i, panel, panelEnd, kFrom, kTo, first);
            }
        }
    }

    private static void tile(float[] p, float[] q, int s, int t, float[] out, int i, int j, int kFrom, int kTo, boolean first) {
        int lanes = SPECIES.length();
        int o0 = i * t + j, o1 = o0 + t, o2 = o1 + t, o3 = o2 + t;
        FloatVector a0, b0, a1, b1, a2, b2, a3, b3;
        if (first) {
            a0 = b0 = a1 = b1 = a2 = b2 = a3 = b3 = FloatVector.zero(SPECIES);
        } else {
            a0 = FloatVector.fromArray(SPECIES, out, o0);
            b0 = FloatVector.fromArray(SPECIES, out, o0 + lanes);
            a1 = FloatVector.fromArray(SPECIES, out, o1);
            b1 = FloatVector.fromArray(SPECIES, out, o1 + lanes);
            a2 = FloatVector.fromArray(SPECIES, out, o2);
            b2 = FloatVector.fromArray(SPECIES, out, o2 + lanes);
            a3 = FloatVector.fromArray(SPECIES, out, o3);
            b3 = FloatVector.fromArray(SPECIES, out, o3 + lanes);
        }
        for (int k = kFrom; k < kTo; k++) {
            FloatVector qa = FloatVector.fromArray(SPECIES, q, k * t + j);
            FloatVector qb = FloatVector.fromArray(SPECIES, q, k * t + j + lanes);
            FloatVector p0 = FloatVector.broadcast(SPECIES, p[i * s + k]);
            FloatVector p1 = FloatVector.broadcast(SPECIES, p[(i + 1) * s + k]);
            FloatVector p2 = FloatVector.broadcast(SPECIES, p[(i + 2) * s + k]);
            FloatVector p3 = FloatVector.broadcast(SPECIES, p[(i + 3) * s + k]);
            a0 = p0.fma(qa, a0);
            b0 = p0.fma(qb, b0);
            a1 = p1.fma(qa, a1);
            b1 = p1.fma(qb, b1);
            a2 = p2.fma(qa, a2);
            b2 = p2.fma(qb, b2);
            a3 = p3.fma(qa, a3);
            b3 = p3.fma(qb, b3);
        }
        a0.intoArray(out, o0);
        b0.intoArray(out, o0 + lanes);
        a1.intoArray(out, o1);
        b1.intoArray(out, o1 + lanes);
        a2.intoArray(out, o2);
        b2.intoArray(out, o2 + lanes);
        a3.intoArray(out, o3);
        b3.intoArray(out, o3 + lanes);
    }

    /** Elements [jFrom, jTo) of row i over k in [kFrom, kTo), scalar. */
    private static void elements(float[] p, float[] q, int s, int t, float[] out, int i, int jFrom, int jTo, int kFrom, int kTo,
                                 boolean first) {
        for (int j = jFrom; j < jTo; j++) {
            float acc = first ? 0f : out[i * t + j];
            for (int k = kFrom; k < kTo; k++) acc = Math.fma(p[i * s + k], q[k * t + j], acc);
            out[i * t + j] = acc;
        }
    }
}
