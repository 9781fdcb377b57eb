package io.fusedopt.internal;

import io.fusedopt.Precision;

/**
 * Stochastic rounding of a run of float32 values into a 16-bit param, on the host, drawing the
 * device's bits: element {@code k} of the param with random stream {@code stream} at step
 * {@code step} takes {@link Philox#word} for (seed, step, stream, k) and is rounded by
 * {@link Conversions#narrowStochastic}, as the kernels' {@code fo_random_block} and
 * {@code fo_narrow16_stochastic} do.
 */
public final class StochasticRounding {
    private final int[] counter = new int[4];
    private final int[] block = new int[4];

    /**
     * Rounds {@code values[from .. from + n)}, the param's elements {@code first .. first + n),
     * into {@code out[outOffset ..]}. One instance per thread (it keeps the Philox scratch).
     */
    public void narrow(Precision precision, float[] values, int from, short[] out, int outOffset, int n,
                       long seed, long step, int stream, long first) {
        long blockOf = -1;
        for (int i = 0; i < n; i++) {
            long k = first + i;
            if (k >>> 2 != blockOf) { // one Philox block serves four consecutive elements
                blockOf = k >>> 2;
                Philox.word(seed, step, stream, k, counter, block);
            }
            out[outOffset + i] = Conversions.narrowStochastic(precision, values[from + i], block[(int) (k & 3)]);
        }
    }

    /** One element: {@link #narrow} of a single value. */
    public short narrow(Precision precision, float value, long seed, long step, int stream, long k) {
        return Conversions.narrowStochastic(precision, value, Philox.word(seed, step, stream, k, counter, block));
    }
}
