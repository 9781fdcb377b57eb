package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.algorithms.AdagradAlgorithm;
import io.fusedopt.internal.algorithms.AdamAlgorithm;
import io.fusedopt.internal.algorithms.SgdAlgorithm;
import org.junit.jupiter.api.Test;

/** The per-step scalars: fresh from t every step, derived from the float32 hyper-parameters. */
class StepScalarsTest {

    @Test
    void adamBiasCorrectionsAreFreshEachStep() {
        Adam adam = Adam.builder().optLearningRate(0.1).build();
        float[] s = new float[AdamAlgorithm.COUNT];
        for (long t : new long[] {1, 2, 10, 1000, 1L << 40}) {
            StepScalars.compute(adam, t, s);
            double bc1 = 1 - Math.pow(0.9f, t);
            double bc2 = 1 - Math.pow(0.999f, t);
            assertEquals((float) -(((double) 0.1f) / bc1), s[AdamAlgorithm.NEG_STEP_SIZE], Math.ulp(s[0]) * 2, "t=" + t);
            assertEquals((float) (1 / Math.sqrt(bc2)), s[AdamAlgorithm.INV_SQRT_BC2], Math.ulp(s[1]) * 2, "t=" + t);
            assertEquals((float) (1 - (double) 0.9f), s[AdamAlgorithm.ONE_MINUS_BETA1]);
        }
        // Recomputing step 2 after step 1000 gives step 2's values again: nothing accumulates.
        float[] first = new float[AdamAlgorithm.COUNT];
        float[] again = new float[AdamAlgorithm.COUNT];
        StepScalars.compute(adam, 2, first);
        StepScalars.compute(adam, 1000, again);
        StepScalars.compute(adam, 2, again);
        assertEquals(java.util.Arrays.toString(first), java.util.Arrays.toString(again));
    }

    @Test
    void powerBySquaringMatchesPowClosely() {
        for (double base : new double[] {0.9f, 0.999f, 0.5, 0.0, 0.99999}) {
            for (long e : new long[] {0, 1, 2, 3, 17, 1000, 123456789L}) {
                double expected = Math.pow(base, e);
                // squaring doubles the relative error each time: about e ulps at most, far below float32's 2^-24
                assertEquals(expected, StepScalars.powerBySquaring(base, e), 1e-300 + 4e-16 * Math.max(1, e) * expected,
                        base + "^" + e);
            }
        }
    }

    @Test
    void stepsCountFromOne() {
        assertThrows(IllegalArgumentException.class,
                () -> StepScalars.compute(Sgd.builder().build(), 0, new float[SgdAlgorithm.COUNT]));
    }

    @Test
    void adagradLearningRateDecay() {
        float[] s = new float[AdagradAlgorithm.COUNT];
        StepScalars.compute(Adagrad.builder().optLearningRate(0.1).optLrDecay(0.5).build(), 3, s);
        // clr = 0.1 / (1 + 2*0.5) = 0.05
        assertEquals(-0.05f, s[AdagradAlgorithm.NEG_CLR], 1e-9f);
    }

    /** A scheduled rate enters the scalars exactly as a hyper-parameter of that value would (Adam's lr/bc1, AdamW's 1 - lr*wd). */
    @Test
    void aScheduledRateReplacesTheHyperParameter() {
        Adam adamW = Adam.adamW().optLearningRate(1e-3).build();
        float scheduled = LrSchedule.cosine(10, 0.1).learningRateAt(1e-3, 4);
        float[] viaSchedule = new float[AdamAlgorithm.COUNT];
        float[] viaConfig = new float[AdamAlgorithm.COUNT];
        io.fusedopt.internal.UpdatePlan plan = io.fusedopt.internal.UpdatePlan.of(adamW);
        StepScalars.compute(plan.kernel(), StepScalars.hyperParameters(adamW), 0, scheduled, plan.staticFlags(), 5, viaSchedule, 0);
        StepScalars.compute(adamW.withLearningRate(scheduled), 5, viaConfig);
        assertEquals(java.util.Arrays.toString(viaConfig), java.util.Arrays.toString(viaSchedule));
        assertEquals((float) ((double) 1e-3f * (0.1 + 0.9 * (1 + Math.cos(Math.PI * 0.4)) / 2)), scheduled, Math.ulp(scheduled));
    }

    /**
     * StepScalars' exp, log and pow (what per-step scalars use instead of Math's, so that the
     * device's fo_exp/fo_log/fo_pow give the same bits) agree with StrictMath to a few double ulps
     * over the range scalars need, subnormals and the edges included.
     */
    @Test
    void expLogAndPowAreAccurateToAFewDoubleUlps() {
        java.util.Random random = new java.util.Random(11);
        for (int i = 0; i < 200_000; i++) {
            double x = Math.scalb(1 + random.nextDouble(), random.nextInt(2097) - 1074);
            double log = StepScalars.log(x);
            assertEquals(StrictMath.log(x), log, 4 * Math.ulp(StrictMath.log(x)) + 1e-300, "log " + x);
            double y = (random.nextDouble() - 0.5) * 1400;
            double exp = StepScalars.exp(y);
            assertEquals(StrictMath.exp(y), exp, 4 * Math.ulp(StrictMath.exp(y)) + Double.MIN_VALUE * 2, "exp " + y);
        }
        assertEquals(0.0, StepScalars.log(1.0));
        assertEquals(1.0, StepScalars.exp(0.0));
        assertEquals(Double.NaN, StepScalars.log(0.0));
        assertEquals(Double.NaN, StepScalars.log(-1.0));
        assertEquals(Double.NaN, StepScalars.exp(Double.NaN));
        assertEquals(Double.POSITIVE_INFINITY, StepScalars.exp(710));
        assertEquals(0.0, StepScalars.exp(-746));
        assertEquals(1.0, StepScalars.pow(0.96, 0.0));
        for (double[] c : new double[][] {{0.96, 0.004}, {0.96, 4000}, {1.0 + 1e-3, 0.75}, {12345.0, -0.75}, {0.5, 1e-9}}) {
            double expected = StrictMath.pow(c[0], c[1]);
            assertEquals(expected, StepScalars.pow(c[0], c[1]), 1e-14 * expected, c[0] + "^" + c[1]);
        }
    }
}
