package io.fusedopt.internal;

/**
 * Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC'11; the
 * generator cuRAND and PyTorch use): a counter-based generator, a pure function of a 128-bit
 * counter and a 64-bit key, so that any element's random bits are computed where the element is,
 * on the CPU or the GPU alike ({@code fo_philox} in kernels/fusedopt_common.cuh is the same
 * function). Checked against Random123's known-answer vectors.
 */
public final class Philox {
    private Philox() {}

    private static final long M0 = 0xD2511F53L, M1 = 0xCD9E8D57L;
    private static final int W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /**
     * The four 32-bit words of Philox4x32-10 for {@code counter} (four words) and key
     * ({@code key0}, {@code key1}), into {@code out}.
     */
    public static void block(int[] counter, int key0, int key1, int[] out) {
        int c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
        int k0 = key0, k1 = key1;
        for (int round = 0; round < 10; round++) {
            long p0 = M0 * (c0 & 0xFFFFFFFFL), p1 = M1 * (c2 & 0xFFFFFFFFL);
            int hi0 = (int) (p0 >>> 32), lo0 = (int) p0, hi1 = (int) (p1 >>> 32), lo1 = (int) p1;
            c0 = hi1 ^ c1 ^ k0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ k1;
            c3 = lo0;
            k0 += W0;
            k1 += W1;
        }
        out[0] = c0;
        out[1] = c1;
        out[2] = c2;
        out[3] = c3;
    }

    /**
     * The random word of element {@code index} of random stream {@code stream} at step
     * {@code step} under {@code seed} (fo_random_word): word {@code index % 4} of the block whose
     * counter is (index / 4 as two words, low first; stream; the step's low 32 bits) and whose key
     * is the seed (low word first).
     */
    public static int word(long seed, long step, int stream, long index, int[] counter, int[] out) {
        long quad = index >>> 2;
        counter[0] = (int) quad;
        counter[1] = (int) (quad >>> 32);
        counter[2] = stream;
        counter[3] = (int) step;
        block(counter, (int) seed, (int) (seed >>> 32), out);
        return out[(int) (index & 3)];
    }
}
