package io.fusedopt.cpu;

import io.fusedopt.internal.NewtonSchulz;

/**
 * The Newton-Schulz products of CPU_FAST: row blocks of the output on every worker of the team,
 * each by {@link ExactMatrixProduct}'s SIMD tiles (or, without the Vector API, the reference's
 * loops over the block's rows), every element in the reference's order, so the bits are the
 * reference backend's. The Gram matrix is the product with a transposed copy (its elements are the
 * reference's mirrored ones, the same products in the same order). One instance per step program:
 * it keeps the current product's operands for the team's task.
 */
final class FastMatrixProducts implements NewtonSchulz.Products {
    /**
     * Output rows per item of the parallel loop, at most (a multiple of the SIMD tile's rows): an
     * item passes its rows over each block of q once, so larger items read q less often; smaller
     * ones, down to {@value #MIN_ROWS_PER_ITEM}, give every worker some.
     */
    private static final int MAX_ROWS_PER_ITEM = 128, MIN_ROWS_PER_ITEM = 16;
    /** Below this many multiply-adds a product runs on the calling thread: waking the team would cost more. */
    private static final long SERIAL_WORK = 1L << 18;

    private final WorkerTeam team;
    private final boolean vector;
    private final WorkerTeam.Task rowBlock = this::rowBlock;
    private float[] transposed = new float[0];
    private float[] p, q, out;
    private int rows, inner, columns, rowsPerItem;

    FastMatrixProducts(WorkerTeam team, boolean vector) {
        this.team = team;
        this.vector = vector;
    }

    @Override
    public void gramOfRows(float[] x, int m, int n, float[] out) {
        if (transposed.length < m * n) transposed = new float[m * n];
        for (int i = 0; i < m; i++) for (int k = 0; k < n; k++) transposed[k * m + i] = x[i * n + k];
        product(x, transposed, m, n, m, out);
    }

    @Override
    public void symmetricSquare(float[] s, int m, float[] out) {
        product(s, s, m, m, m, out);
    }

    @Override
    public void product(float[] p, float[] q, int r, int s, int t, float[] out) {
        this.p = p;
        this.q = q;
        this.out = out;
        rows = r;
        inner = s;
        columns = t;
        int perWorker = (r + team.size() - 1) / team.size();
        rowsPerItem = Math.max(MIN_ROWS_PER_ITEM, Math.min(MAX_ROWS_PER_ITEM, (perWorker + 3) / 4 * 4));
        int items = (r + rowsPerItem - 1) / rowsPerItem;
        if ((long) r * s * t < SERIAL_WORK || items == 1 || team.size() == 1) {
            rows(0, r);
        } else {
            team.run(items, rowBlock);
        }
        this.p = this.q = this.out = null;
    }

    private void rowBlock(int worker, int item) {
        int from = item * rowsPerItem;
        rows(from, Math.min(rows, from + rowsPerItem));
    }

    private void rows(int from, int to) {
        if (vector) {
            ExactMatrixProduct.product(p, q, inner, columns, out, from, to);
        } else {
            NewtonSchulz.product(p, q, inner, columns, out, from, to);
        }
    }
}
