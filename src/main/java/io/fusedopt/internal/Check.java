package io.fusedopt.internal;

/**
 * Argument checks for hyper-parameters. Every value is checked as the float32 it becomes, so that a
 * double that is valid but rounds to an invalid float (a beta that rounds to 1, an eps that rounds
 * to 0) is refused too. Messages name the parameter, the value and the domain.
 */
public final class Check {
    private Check() {}

    public static void learningRate(double lr) {
        nonNegative("learningRate", lr);
    }

    /** Finite and >= 0. */
    public static void nonNegative(String name, double value) {
        float f = finite(name, value);
        if (f < 0f) {
            throw new IllegalArgumentException(name + " must be >= 0, got " + value);
        }
    }

    /** Finite and > 0, also after rounding to float32. */
    public static void positive(String name, double value) {
        float f = finite(name, value);
        if (!(f > 0f)) {
            throw new IllegalArgumentException(name + " must be > 0 (and not round to 0 in float32), got " + value);
        }
    }

    /** In [0, 1] when {@code closed}, else in [0, 1), also after rounding to float32. */
    public static void unitInterval(String name, double value, boolean closed) {
        float f = finite(name, value);
        boolean ok = f >= 0f && (closed ? f <= 1f : f < 1f);
        if (!ok) {
            throw new IllegalArgumentException(name + " must be in [0, 1" + (closed ? "]" : ")")
                    + (f == 1f && value != 1 ? " after rounding to float32 (it rounds to 1)" : "") + ", got " + value);
        }
    }

    public static void notNull(String name, Object value) {
        if (value == null) {
            throw new IllegalArgumentException(name + " must not be null");
        }
    }

    private static float finite(String name, double value) {
        float f = (float) value;
        if (Double.isNaN(value) || Float.isInfinite(f)) {
            throw new IllegalArgumentException(name + " must be a finite float32 value, got " + value);
        }
        return f;
    }
}
