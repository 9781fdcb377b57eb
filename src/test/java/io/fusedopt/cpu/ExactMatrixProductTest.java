package io.fusedopt.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.fusedopt.internal.NewtonSchulz;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Work in progress (Muon's exact mode): the Vector API product has the bits of the reference
 * product, on shapes that cross the register tile's edges (rows not a multiple of 4, columns not a
 * multiple of two vectors) and on one that fills whole tiles, with values of mixed sign and
 * magnitude so that any change of the summation order would change last bits.
 */
class ExactMatrixProductTest {

    @ParameterizedTest(name = "{0}x{1} times {1}x{2}")
    @CsvSource({"1, 1, 1", "3, 5, 7", "4, 16, 32", "7, 33, 37", "16, 16, 64", "13, 40, 71", "9, 300, 530", "3, 0, 5"})
    void vectorProductHasTheReferenceBits(int r, int s, int t) {
        Random random = new Random(30L * r + 7L * s + t);
        float[] p = randomMatrix(random, r * s);
        float[] q = randomMatrix(random, s * t);
        float[] expected = new float[r * t];
        NewtonSchulz.product(p, q, r, s, t, expected);

        float[] whole = new float[r * t];
        ExactMatrixProduct.product(p, q, s, t, whole, 0, r);
        assertArrayEquals(expected, whole);

        // Two workers' disjoint row ranges give the same bits.
        float[] split = new float[r * t];
        ExactMatrixProduct.product(p, q, s, t, split, 0, r / 2);
        ExactMatrixProduct.product(p, q, s, t, split, r / 2, r);
        assertArrayEquals(expected, split);
    }

    private static float[] randomMatrix(Random random, int size) {
        float[] m = new float[size];
        for (int i = 0; i < size; i++) m[i] = (float) (random.nextGaussian() * Math.pow(2, random.nextInt(9) - 4));
        return m;
    }
}
