package io.fusedopt.internal;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A learning-rate schedule as the kernels hold it: a table of segments, each a closed-form factor of
 * the scheduler step. The device evaluates it in fo_scheduled_lr (kernels/fusedopt_scalars.cuh)
 * with the same IEEE double operations in the same order, so both backends get the same bits.
 *
 * <p>The factor of scheduler step {@code n} (the number of steps applied before the one being
 * taken) comes from the last segment whose start is {@code <= n}, at its local step
 * {@code m = n - start}; the group's learning rate for the step is {@code float32(lr * factor)}.
 */
public final class LrSegments {
    /** Segment kinds (FO_SCHEDULE_* in kernels/fusedopt_scalars.cuh). */
    public static final int CONSTANT = 0, LINEAR = 1, COSINE = 2, POWER = 3, POLYNOMIAL = 4, RESTARTS = 5;
    /** Segments one group may hold (FO_MAX_SEGMENTS). */
    public static final int MAX_SEGMENTS = 32;
    /** Bytes of one FoSegment. */
    public static final int SEGMENT_BYTES = 48;
    /** The largest exponent of a polynomial segment and the largest cycle multiplier of warm restarts. */
    public static final int MAX_POWER = 1 << 16;

    private static final String[] KIND_NAMES = {"constant", "linear", "cosine", "power", "polynomial", "restarts"};

    /**
     * One segment. {@code a} and {@code b} are factors (finite, >= 0), except that for POWER
     * {@code b} is the ratio gamma (finite, >= 0).
     *
     * @param start the first scheduler step the segment covers (the next segment's start ends it)
     * @param length LINEAR, COSINE, POLYNOMIAL: steps from a to b (>= 1); else 0
     * @param period POWER: steps per factor of gamma; RESTARTS: the first cycle's length (>= 1); else 0
     * @param power POLYNOMIAL: the exponent (>= 0); RESTARTS: the cycle-length multiplier (>= 1); else 0
     */
    public record Segment(int kind, long start, long length, long period, int power, double a, double b) {
        public Segment {
            if (kind < CONSTANT || kind > RESTARTS) throw new IllegalArgumentException("unknown schedule segment kind " + kind);
            if (start < 0) throw new IllegalArgumentException("a schedule segment's start must be >= 0, got " + start);
            requireFactor(KIND_NAMES[kind] + " factor a", a);
            requireFactor(KIND_NAMES[kind] + (kind == POWER ? " gamma" : " factor b"), b);
            boolean hasLength = kind == LINEAR || kind == COSINE || kind == POLYNOMIAL;
            boolean hasPeriod = kind == POWER || kind == RESTARTS;
            if (hasLength ? length < 1 : length != 0) {
                throw new IllegalArgumentException(KIND_NAMES[kind] + " segment: length " + length + (hasLength ? " must be >= 1" : " must be 0"));
            }
            if (hasPeriod ? period < 1 : period != 0) {
                throw new IllegalArgumentException(KIND_NAMES[kind] + " segment: period " + period + (hasPeriod ? " must be >= 1" : " must be 0"));
            }
            int minPower = kind == RESTARTS ? 1 : 0;
            boolean hasPower = kind == POLYNOMIAL || kind == RESTARTS;
            if (hasPower ? power < minPower || power > MAX_POWER : power != 0) {
                throw new IllegalArgumentException(KIND_NAMES[kind] + " segment: power " + power
                        + (hasPower ? " must be in [" + minPower + ", " + MAX_POWER + "]" : " must be 0"));
            }
        }

        /** The factor at local step {@code m >= 0} (fo_segment_factor). */
        double factor(long m) {
            switch (kind) {
                case LINEAR:
                    return a + (b - a) * fraction(m, length);
                case COSINE:
                    return b + (a - b) * cosineWeight(fraction(m, length));
                case POWER:
                    return a * StepScalars.powerBySquaring(b, m / period);
                case POLYNOMIAL:
                    return b + (a - b) * StepScalars.powerBySquaring(1.0 - fraction(m, length), power);
                case RESTARTS: {
                    long cycle = period;
                    long into = m;
                    if (power == 1) {
                        into = m % cycle;
                    } else {
                        while (into >= cycle) {
                            into -= cycle;
                            cycle = cycle > Long.MAX_VALUE / power ? Long.MAX_VALUE : cycle * power;
                        }
                    }
                    return b + (a - b) * cosineWeight((double) into / (double) cycle);
                }
                default:
                    return a;
            }
        }
    }

    private final Segment[] segments;
    private final double maxFactor;

    /**
     * A schedule of 1 to {@link #MAX_SEGMENTS} segments, the first starting at 0, starts strictly
     * increasing.
     *
     * @throws IllegalArgumentException naming the problem, also when the factor is not finite at
     *     some step (a POWER segment with gamma > 1 that never ends, or that overflows before it ends)
     */
    public LrSegments(List<Segment> list) {
        if (list.isEmpty()) throw new IllegalArgumentException("a schedule needs at least one segment");
        if (list.size() > MAX_SEGMENTS) {
            throw new IllegalArgumentException("a schedule holds at most " + MAX_SEGMENTS + " segments, got " + list.size());
        }
        segments = list.toArray(new Segment[0]);
        if (segments[0].start() != 0) throw new IllegalArgumentException("a schedule's first segment must start at step 0, got " + segments[0].start());
        for (int i = 1; i < segments.length; i++) {
            if (segments[i].start() <= segments[i - 1].start()) {
                throw new IllegalArgumentException("schedule segments must start at increasing steps, got " + segments[i - 1].start()
                        + " then " + segments[i].start());
            }
        }
        double max = 0;
        for (int i = 0; i < segments.length; i++) max = Math.max(max, segmentMax(i));
        maxFactor = max;
    }

    /** The largest factor segment {@code i} reaches (a bound: rounding may exceed it by a few ulps). */
    private double segmentMax(int i) {
        Segment s = segments[i];
        if (s.kind() != POWER || s.b() <= 1.0) return Math.max(s.a(), s.kind() == POWER ? 0 : s.b());
        if (i == segments.length - 1) {
            throw new IllegalArgumentException("a step or exponential schedule with gamma " + s.b() + " > 1 grows without bound:"
                    + " the learning rate would become infinite; gamma must be <= 1 in a schedule's last phase");
        }
        long last = segments[i + 1].start() - 1 - s.start();
        double f = s.factor(last); // gamma > 1: the largest factor is the last step's
        if (!Double.isFinite(f)) {
            throw new IllegalArgumentException("the schedule's factor is not finite at step " + (s.start() + last) + " (gamma " + s.b()
                    + " > 1 for " + (last / s.period()) + " periods)");
        }
        return f;
    }

    public int size() {
        return segments.length;
    }

    public List<Segment> segments() {
        return List.of(segments);
    }

    /** An upper bound of the factor over every step (rounding aside). */
    public double maxFactor() {
        return maxFactor;
    }

    /** The factor of scheduler step {@code n >= 0}. */
    public double factorAt(long n) {
        if (n < 0) throw new IllegalArgumentException("scheduler steps count from 0, got " + n);
        int i = 0;
        while (i + 1 < segments.length && segments[i + 1].start() <= n) i++;
        return segments[i].factor(n - segments[i].start());
    }

    /**
     * The learning rate of scheduler step {@code n} for a group whose float32 learning rate is
     * {@code lr} (fo_scheduled_lr): {@code float32(lr * factor)}; {@code lr} itself without a
     * schedule.
     */
    public static float scheduledLr(float lr, LrSegments schedule, long n) {
        if (schedule == null) return lr;
        return (float) ((double) lr * schedule.factorAt(n));
    }

    /**
     * Refuses a learning rate the schedule would make infinite in float32 (the factor may exceed 1:
     * a one-cycle schedule's base rate is its peak, but a step schedule with gamma > 1 grows).
     */
    public void requireFiniteWith(double learningRate, String what) {
        float lr = (float) learningRate;
        double peak = (double) lr * maxFactor * (1 + 0x1p-40); // a margin for the last operations' rounding
        if (Float.isInfinite((float) peak)) {
            throw new IllegalArgumentException(what + ": the schedule multiplies the learning rate " + learningRate + " by up to "
                    + maxFactor + ", which exceeds float32's range (" + Float.MAX_VALUE + ")");
        }
    }

    /** min(m, length) / length (fo_schedule_fraction). */
    static double fraction(long m, long length) {
        return (double) Math.min(m, length) / (double) length;
    }

    /** (1 + cospi(x)) / 2 (fo_cosine_weight). */
    static double cosineWeight(double x) {
        return (1.0 + cospi(x)) * 0.5;
    }

    private static final double PI = 3.141592653589793;

    /**
     * cos(pi * x) for x in [0, 1] (fo_cospi): fdlibm's polynomial kernels on |y| <= pi/4 in rounded
     * double operations, identical on the device; clamped to [-1, 1]. Within 5e-16 of the exact value.
     */
    public static double cospi(double x) {
        boolean negate = x > 0.5;
        if (negate) x = 1.0 - x; // exact (Sterbenz)
        double c = x <= 0.25 ? kernelCos(PI * x) : kernelSin(PI * (0.5 - x));
        if (c > 1.0) c = 1.0;
        return negate ? -c : c;
    }

    private static double kernelCos(double y) {
        double z = y * y;
        double r = z * -1.13596475577881948265e-11;
        r = z * (2.08757232129817482790e-09 + r);
        r = z * (-2.75573143513906633035e-07 + r);
        r = z * (2.48015872894767294178e-05 + r);
        r = z * (-1.38888888888741095749e-03 + r);
        r = z * (4.16666666666666019037e-02 + r);
        return 1.0 - (0.5 * z - z * r);
    }

    private static double kernelSin(double y) {
        double z = y * y;
        double r = z * 1.58969099521155010221e-10;
        r = z * (-2.50507602534068634195e-08 + r);
        r = z * (2.75573137070700676789e-06 + r);
        r = z * (-1.98412698298579493134e-04 + r);
        r = 8.33333333332248946124e-03 + r;
        double v = z * y;
        return y + v * (-1.66666666666666324348e-01 + z * r);
    }

    /** Writes the segments as FoSegment structs (little-endian) at {@code offset}. */
    public void encode(ByteBuffer littleEndian, int offset) {
        for (int i = 0; i < segments.length; i++) {
            Segment s = segments[i];
            int o = offset + i * SEGMENT_BYTES;
            littleEndian.putLong(o, s.start());
            littleEndian.putLong(o + 8, s.length());
            littleEndian.putLong(o + 16, s.period());
            littleEndian.putInt(o + 24, s.kind());
            littleEndian.putInt(o + 28, s.power());
            littleEndian.putDouble(o + 32, s.a());
            littleEndian.putDouble(o + 40, s.b());
        }
    }

    /**
     * The schedule as text, for checkpoint metadata: segments separated by {@code ;}, each
     * {@code kind,start,length,period,power,a,b} with {@link Double#toString} (exact round trip).
     */
    public String toText() {
        StringBuilder out = new StringBuilder();
        for (Segment s : segments) {
            if (out.length() > 0) out.append(';');
            out.append(KIND_NAMES[s.kind()]).append(',').append(s.start()).append(',').append(s.length()).append(',')
                    .append(s.period()).append(',').append(s.power()).append(',').append(s.a()).append(',').append(s.b());
        }
        return out.toString();
    }

    /** Parses {@link #toText()}; every value is validated as by the constructors. */
    public static LrSegments fromText(String text) {
        if (text == null || text.isEmpty()) throw new IllegalArgumentException("the schedule is empty");
        String[] parts = text.split(";", -1);
        if (parts.length > MAX_SEGMENTS) throw new IllegalArgumentException("a schedule holds at most " + MAX_SEGMENTS + " segments");
        List<Segment> list = new ArrayList<>();
        for (String part : parts) {
            String[] f = part.split(",", -1);
            if (f.length != 7) throw new IllegalArgumentException("schedule segment '" + part + "' does not have 7 fields");
            int kind = List.of(KIND_NAMES).indexOf(f[0]);
            if (kind < 0) throw new IllegalArgumentException("unknown schedule segment kind '" + f[0] + "'");
            try {
                list.add(new Segment(kind, Long.parseLong(f[1]), Long.parseLong(f[2]), Long.parseLong(f[3]), Integer.parseInt(f[4]),
                        Double.parseDouble(f[5]), Double.parseDouble(f[6])));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("schedule segment '" + part + "' holds a malformed number", e);
            }
        }
        return new LrSegments(list);
    }

    private static void requireFactor(String name, double v) {
        if (!(v >= 0) || Double.isInfinite(v)) throw new IllegalArgumentException(name + " must be finite and >= 0, got " + v);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LrSegments other && java.util.Arrays.equals(segments, other.segments);
    }

    @Override
    public int hashCode() {
        return java.util.Arrays.hashCode(segments);
    }

    @Override
    public String toString() {
        return toText();
    }
}
