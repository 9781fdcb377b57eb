package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.IntToDoubleFunction;
import java.util.function.Supplier;
import org.junit.jupiter.params.provider.Arguments;

/** What the per-algorithm formula tests ({@code RAdamFormulaTest}, {@code LionFormulaTest}) share. */
final class FormulaTests {
    private FormulaTests() {}

    /** A refused hyper-parameter case: its name, the bad value, and the build that must refuse it. */
    static Arguments refused(String name, double value, Supplier<? extends OptimizerConfig> build) {
        return Arguments.of(name, value, build);
    }

    /** {@code build} throws an IllegalArgumentException whose message names the parameter and the value. */
    static void assertRefusedNamingIt(String name, double value, Supplier<? extends OptimizerConfig> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().contains(name) && e.getMessage().contains(String.valueOf(value)),
                "the message should name " + name + " and " + value + ": " + e.getMessage());
    }

    /** |actual[i] - expected[i]| <= bound(i) for every element, else a message naming the element and the values. */
    static void assertNear(double[] expected, float[] actual, IntToDoubleFunction bound, String what) {
        for (int i = 0; i < expected.length; i++) {
            double error = Math.abs(actual[i] - expected[i]);
            assertTrue(error <= bound.applyAsDouble(i), what + "[" + i + "]: " + actual[i] + " vs float64 " + expected[i]
                    + ", error " + error + " > bound " + bound.applyAsDouble(i));
        }
    }

    /** n Gaussian floats times {@code scale}. */
    static float[] gaussian(Random random, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian() * scale;
        return v;
    }
}
