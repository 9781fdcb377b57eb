package io.fusedopt.internal;

/**
 * Argument checks for hyper-parameters, with one rule for all of them: a value is checked as the
 * float32 it becomes, because that is the value the kernels use (on both backends). So a double
 * that is valid but rounds to an invalid float32 is refused (a beta that rounds to 1, an eps that
 * rounds to 0), and so is a non-zero value that rounds to 0 (a learning rate of 1e-50 would
 * silently turn every update off). Messages name the parameter, the value, what it rounds to and
 * the domain.
 */
public final class Check {
    private Check() {}

    public static void learningRate(double lr) {
        nonNegative("learningRate", lr);
    }

    /** Finite and >= 0, also after rounding to float32; a non-zero value must not round to 0. */
    public static void nonNegative(String name, double value) {
        float f = toFloat32(name, value, ">= 0");
        if (!(f >= 0f)) throw outside(name, value, f, ">= 0");
    }

    /** Finite, of any sign, also after rounding to float32; a non-zero value must not round to 0. */
    public static void finite(String name, double value) {
        toFloat32(name, value, "(of any sign)");
    }

    /** Finite and > 0, also after rounding to float32. */
    public static void positive(String name, double value) {
        float f = toFloat32(name, value, "> 0");
        if (!(f > 0f)) throw outside(name, value, f, "> 0");
    }

    /** In [0, 1] when {@code closed}, else in [0, 1), also after rounding to float32; a non-zero value must not round to 0. */
    public static void unitInterval(String name, double value, boolean closed) {
        String domain = "in [0, 1" + (closed ? "]" : ")");
        float f = toFloat32(name, value, domain);
        if (!(f >= 0f && (closed ? f <= 1f : f < 1f))) throw outside(name, value, f, domain);
    }

    /** Finite and at least {@code min}, also after rounding to float32; a non-zero value must not round to 0. */
    public static void atLeast(String name, double value, double min) {
        String domain = ">= " + min;
        float f = toFloat32(name, value, domain);
        if (!(f >= min)) throw outside(name, value, f, domain);
    }

    /** Finite and at most {@code max}, also after rounding to float32; a non-zero value must not round to 0. */
    public static void atMost(String name, double value, double max) {
        String domain = "<= " + max;
        float f = toFloat32(name, value, domain);
        if (!(f <= max)) throw outside(name, value, f, domain);
    }

    public static void notNull(String name, Object value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
    }

    /**
     * The float32 the kernels will use for {@code value}: refused when it is not finite, or when a
     * non-zero value underflows to 0 (it would then mean something else than what was asked).
     */
    private static float toFloat32(String name, double value, String domain) {
        float f = (float) value;
        if (Double.isNaN(value) || Float.isInfinite(f)) {
            throw new IllegalArgumentException(name + " must be a finite float32 value " + domain + ", got " + value
                    + (Double.isFinite(value) ? " (it rounds to " + f + " in float32)" : ""));
        }
        if (f == 0f && value != 0) {
            throw new IllegalArgumentException(name + " must be " + domain + " and 0 or at least " + Float.MIN_VALUE
                    + " in magnitude, got " + value + ", which rounds to " + f + " in float32 (the value the kernels use)");
        }
        return f;
    }

    private static IllegalArgumentException outside(String name, double value, float f, String domain) {
        boolean rounded = (double) f != value;
        return new IllegalArgumentException(name + " must be " + domain + " in float32 (the value the kernels use), got "
                + value + (rounded ? ", which rounds to " + f + " in float32" : ""));
    }
}
