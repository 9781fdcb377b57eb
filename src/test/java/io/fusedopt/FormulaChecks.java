package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;

/**
 * What the per-algorithm formula tests share: the float32 error bound a float64 model of the
 * formula is held to, the refusal check of a hyper-parameter, and runs over special values
 * (NaN of either sign, infinities, signed zeros, subnormals, the largest floats) compared across
 * backends.
 *
 * <p>The bound. The float32 update rounds each operation once (unit roundoff u = 2^-24). Over a
 * few steps an element's update, a short chain of operations on states that carry the relative
 * errors of earlier steps, stays within {@value #ROUNDINGS_PER_STEP} u of the exact update
 * relative to its size; the parameter additionally takes one rounding to float32 per step (at
 * most one ulp). So after T steps |p32 - p64| &lt;= sum over t of (ulp(p_t) + 32 u |p_t - p_(t-1)|),
 * with p_t the float64 model's values. A wrong formula (a missing or misplaced eps, 1 - beta for
 * beta, a bias correction off by one step) moves the parameter by far more than that.
 */
final class FormulaChecks {
    private FormulaChecks() {}

    static final double UNIT_ROUNDOFF = 0x1p-24;
    /** Relative error of a step's update, in units of {@link #UNIT_ROUNDOFF} (see the class comment). */
    static final int ROUNDINGS_PER_STEP = 32;

    /** The hyper-parameter as the kernels use it: rounded to float32 once, then exact in double. */
    static double f32(double value) {
        return (float) value;
    }

    /** The bound on |p32 - p64| of an element whose float64 values were {@code history[0..T]}. */
    static double parameterTolerance(double[] history) {
        double tolerance = 0;
        for (int t = 1; t < history.length; t++) {
            tolerance += Math.ulp((float) history[t])
                    + ROUNDINGS_PER_STEP * UNIT_ROUNDOFF * Math.abs(history[t] - history[t - 1]);
        }
        return tolerance;
    }

    /** A state of T steps whose exact value is a sum of terms of at most {@code termScale} in size. */
    static double stateTolerance(int steps, double termScale) {
        return steps * ROUNDINGS_PER_STEP * UNIT_ROUNDOFF * termScale;
    }

    static void assertNear(String what, double expected, float actual, double tolerance) {
        assertTrue(Math.abs(actual - expected) <= tolerance,
                what + ": " + actual + " vs the float64 formula's " + expected + " (bound " + tolerance + ", off by "
                        + Math.abs(actual - expected) + ")");
    }

    /** A refused hyper-parameter case for a parameterized test: its name, the bad value, and the build that must refuse it. */
    static org.junit.jupiter.params.provider.Arguments refused(String name, double value, Supplier<? extends OptimizerConfig> build) {
        return org.junit.jupiter.params.provider.Arguments.of(name, value, build);
    }

    /** |actual[i] - expected[i]| <= bound(i) for every element, else a message naming the element and the values. */
    static void assertNear(double[] expected, float[] actual, java.util.function.IntToDoubleFunction bound, String what) {
        for (int i = 0; i < expected.length; i++) assertNear(what + "[" + i + "]", expected[i], actual[i], bound.applyAsDouble(i));
    }

    /** {@code build} is refused with a message naming the hyper-parameter and its value. */
    static void assertRefused(String name, double value, Supplier<? extends OptimizerConfig> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get, name + " = " + value);
        assertTrue(e.getMessage().contains(name) && e.getMessage().contains(Double.toString(value)),
                "the message should name " + name + " and " + value + ": " + e.getMessage());
    }

    /** Float values every update must handle the same way on every path. */
    private static final float[] SPECIAL = {
        Float.NaN, Float.intBitsToFloat(0xffc00000), Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f,
        Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_NORMAL, Float.MAX_VALUE, -Float.MAX_VALUE, 1e-30f, -3e20f,
    };

    /**
     * {@code steps} gradients of {@code n} elements (n past a whole number of vectors, so that the
     * vector body and the scalar tail both run), every third element special and the rest
     * Gaussian, and the special ones moving from element to element between steps.
     */
    static List<float[]> specialGradients(int n, int steps, long seed) {
        Random random = new Random(seed);
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < steps; t++) {
            float[] g = new float[n];
            for (int i = 0; i < n; i++) {
                g[i] = (i + t) % 3 == 0 ? SPECIAL[(i / 3 + 5 * t) % SPECIAL.length] : (float) random.nextGaussian();
            }
            grads.add(g);
        }
        return grads;
    }

    /** Gaussian parameters with a few special ones. */
    static float[] specialParameters(int n, long seed) {
        Random random = new Random(seed);
        float[] p = new float[n];
        for (int i = 0; i < n; i++) p[i] = i % 7 == 3 ? SPECIAL[(i / 7) % SPECIAL.length] : (float) random.nextGaussian();
        return p;
    }

    /**
     * Parameters and states of {@code config} after {@code grads} on {@code backend} equal the CPU
     * reference's, bit for bit with every NaN taken as one (a NaN's payload is the hardware's, not
     * the formula's).
     */
    static void assertBackendEqualsReference(Backend backend, OptimizerConfig config, float[] initial, List<float[]> grads) {
        List<float[]> expected = Trajectory.withStates(Backend.CPU, config, initial, grads);
        List<float[]> actual = Trajectory.withStates(backend, config, initial, grads);
        assertEquals(expected.size(), actual.size());
        for (int k = 0; k < expected.size(); k++) {
            String what = k == 0 ? "param" : config.stateKinds().get(k - 1).stateName();
            for (int i = 0; i < expected.get(k).length; i++) {
                float e = expected.get(k)[i], a = actual.get(k)[i];
                if (Float.floatToIntBits(e) != Float.floatToIntBits(a)) {
                    throw new AssertionError(backend + " " + what + "[" + i + "] is " + a + " (0x"
                            + Integer.toHexString(Float.floatToRawIntBits(a)) + "), the reference has " + e + " (0x"
                            + Integer.toHexString(Float.floatToRawIntBits(e)) + "); gradients "
                            + gradientsOf(grads, i));
                }
            }
        }
    }

    private static String gradientsOf(List<float[]> grads, int i) {
        StringBuilder s = new StringBuilder();
        for (float[] g : grads) s.append(s.length() == 0 ? "" : ", ").append(g[i]);
        return s.toString();
    }
}
