package io.fusedopt.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The tree sum over the lanes a small chunk uses gives the bits of the full tree over all
 * {@link GradientStatistics#LANES} lanes, the unused ones +0.0, which is what the device sums.
 */
class GradientStatisticsTest {

    @Test
    void treeOverUsedLanesEqualsTheFullTree() {
        Random random = new Random(5);
        double[] specials = {0.0, Double.MIN_VALUE, 1e300, Double.POSITIVE_INFINITY, Double.NaN};
        for (int used = 0; used <= GradientStatistics.LANES; used++) {
            for (int trial = 0; trial < 20; trial++) {
                double[] full = new double[GradientStatistics.LANES];
                for (int l = 0; l < used; l++) {
                    double x = random.nextGaussian() * Math.pow(10, random.nextInt(40) - 20);
                    full[l] = random.nextInt(50) == 0 ? specials[random.nextInt(specials.length)] : x * x;
                }
                double[] partial = Arrays.copyOf(full, GradientStatistics.LANES);
                Arrays.fill(partial, used, partial.length, -1.0); // never read
                double expected = GradientStatistics.treeSum(full.clone());
                double actual = GradientStatistics.treeSum(partial, used);
                assertEquals(Double.doubleToLongBits(expected), Double.doubleToLongBits(actual), used + " lanes used");
            }
        }
    }

    @Test
    void chunkSumOfSquaresOfASmallChunkEqualsTheFullLaneOrder() {
        Random random = new Random(6);
        float[] grad = new float[700];
        for (int i = 0; i < grad.length; i++) grad[i] = (float) random.nextGaussian();
        double[] lanes = new double[GradientStatistics.LANES];
        for (int[] chunk : new int[][] {{0, 1}, {3, 9}, {10, 266}, {0, 256}, {1, 257}, {5, 700}}) {
            double[] reference = new double[GradientStatistics.LANES];
            for (int l = 0; l < reference.length; l++) {
                for (int k = chunk[0] + l; k < chunk[1]; k += GradientStatistics.LANES) {
                    double x = grad[k] * 0.5f;
                    reference[l] = reference[l] + x * x;
                }
            }
            double expected = GradientStatistics.treeSum(reference);
            double actual = GradientStatistics.chunkSumOfSquares(k -> grad[(int) k], chunk[0], chunk[1], 0.5f, lanes);
            assertEquals(Double.doubleToLongBits(expected), Double.doubleToLongBits(actual), Arrays.toString(chunk));
        }
    }
}
