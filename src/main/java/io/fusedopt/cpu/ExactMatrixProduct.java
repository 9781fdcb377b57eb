package io.fusedopt.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The float32 matrix product of CPU_FAST's Newton-Schulz iteration ({@link FastMatrixProducts}): {@code out = p q} with the bits of
 * {@link io.fusedopt.internal.NewtonSchulz#product(float[], float[], int, int, int, float[])}: each output element is
 * {@code acc = +0; for k increasing: acc = fma(p[i][k], q[k][j], acc)}.
 *
 * <p>Each vector lane owns one output element, so a lane-wise fma over k in order is the
 * reference's sequence: a register tile of {@value #ROWS} rows by two vectors of columns
 * broadcasts {@code p[i][k]} and loads the row {@code q[k][j..]}; columns past the last full vector
 * take the scalar loop (the same operations). Not yet blocked for caches nor packed.
 */
final class ExactMatrixProduct {
    private ExactMatrixProduct() {}

    private static final VectorSpecies<Float> SPECIES = VectorKernels.SPECIES;
    private static final int ROWS = 4;

    /**
     * Rows {@code [rowFrom, rowTo)} of {@code out = p q}, {@code p} r x s, {@code q} s x t,
     * row-major (rows of out are independent: workers may take disjoint ranges).
     */
    static void product(float[] p, float[] q, int s, int t, float[] out, int rowFrom, int rowTo) {
        int lanes = SPECIES.length();
        int vectorColumns = t - t % (2 * lanes);
        int i = rowFrom;
        for (; i + ROWS <= rowTo; i += ROWS) {
            for (int j = 0; j < vectorColumns; j += 2 * lanes) tile(p, q, s, t, out, i, j);
            for (int j = vectorColumns; j < t; j++) for (int ii = i; ii < i + ROWS; ii++) out[ii * t + j] = element(p, q, s, t, ii, j);
        }
        for (; i < rowTo; i++) {
            for (int j = 0; j < t; j++) out[i * t + j] = element(p, q, s, t, i, j);
        }
    }

    private static void tile(float[] p, float[] q, int s, int t, float[] out, int i, int j) {
        int lanes = SPECIES.length();
        FloatVector a0 = FloatVector.zero(SPECIES), b0 = FloatVector.zero(SPECIES);
        FloatVector a1 = FloatVector.zero(SPECIES), b1 = FloatVector.zero(SPECIES);
        FloatVector a2 = FloatVector.zero(SPECIES), b2 = FloatVector.zero(SPECIES);
        FloatVector a3 = FloatVector.zero(SPECIES), b3 = FloatVector.zero(SPECIES);
        for (int k = 0; k < s; k++) {
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
        a0.intoArray(out, i * t + j);
        b0.intoArray(out, i * t + j + lanes);
        a1.intoArray(out, (i + 1) * t + j);
        b1.intoArray(out, (i + 1) * t + j + lanes);
        a2.intoArray(out, (i + 2) * t + j);
        b2.intoArray(out, (i + 2) * t + j + lanes);
        a3.intoArray(out, (i + 3) * t + j);
        b3.intoArray(out, (i + 3) * t + j + lanes);
    }

    private static float element(float[] p, float[] q, int s, int t, int i, int j) {
        float acc = 0f;
        for (int k = 0; k < s; k++) acc = Math.fma(p[i * s + k], q[k * t + j], acc);
        return acc;
    }
}
