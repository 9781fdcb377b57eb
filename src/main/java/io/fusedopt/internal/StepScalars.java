package io.fusedopt.internal;

import io.fusedopt.OptimizerConfig;

/**
 * The per-step scalars of every kernel, computed once on the host and handed unchanged to the CPU
 * backends: the place where hyper-parameters and the step counter become the float32 values the
 * elementwise updates use, through each kernel's {@link UpdateKernel#scalars}. Rule: each
 * hyper-parameter is rounded to float32 first; anything derived from it is computed in double from
 * that float32 value and rounded once. The CUDA kernels compute the same values on the device
 * ({@code Scalars::of} in each {@code kernels/FAMILY.cu}) from the same float32 hyper-parameters.
 */
public final class StepScalars {
    private StepScalars() {}

    /** Floats per group in the hyper-parameter table (FO_HYPER_STRIDE). */
    public static final int HYPER_STRIDE = 16;
    /** Floats per group in the per-step scalar table (FO_SCALAR_STRIDE). */
    public static final int SCALAR_STRIDE = 16;
    /** The hyper-parameter table: every algorithm's learning rate and weight decay (FO_H_* in kernels/fusedopt_scalars.cuh). */
    public static final int H_LR = 0, H_WEIGHT_DECAY = 1;
    /** The first index of an algorithm's own hyper-parameters ({@link Algorithm#ownHyperParameters}). */
    public static final int H_FIRST_OWN = 2;

    /** A group's hyper-parameters as the float32 values the scalar computation starts from. */
    public static float[] hyperParameters(OptimizerConfig config) {
        return Algorithms.of(config).hyperParametersOf(config);
    }

    /**
     * Writes the scalars of {@code config} for step {@code step} (1-based) into {@code out}, whose
     * length must be at least the kernel's scalar count.
     */
    public static void compute(OptimizerConfig config, long step, float[] out) {
        UpdatePlan plan = UpdatePlan.of(config);
        compute(plan.kernel(), hyperParameters(config), 0, plan.staticFlags(), step, out, 0);
    }

    /**
     * The scalars of step {@code step} of a group running {@code kernel} with hyper-parameters
     * {@code hyper[hyperOffset...]} and step-independent flags {@code flags}, into
     * {@code out[outOffset...]}.
     */
    public static void compute(UpdateKernel kernel, float[] hyper, int hyperOffset, int flags, long step,
                               float[] out, int outOffset) {
        compute(kernel, hyper, hyperOffset, hyper[hyperOffset + H_LR], flags, step, out, outOffset);
    }

    /**
     * As {@link #compute(UpdateKernel, float[], int, int, long, float[], int)} with the step's
     * learning rate {@code lrF} in place of the table's (a scheduled rate, {@link LrSegments#scheduledLr}).
     */
    public static void compute(UpdateKernel kernel, float[] hyper, int hyperOffset, float lrF, int flags, long step,
                               float[] out, int outOffset) {
        if (step < 1) {
            throw new IllegalArgumentException("step counts from 1, got " + step);
        }
        kernel.scalars(hyper, hyperOffset, lrF, flags, step, out, outOffset);
    }

    /**
     * base^exponent by binary exponentiation: a fixed sequence of IEEE double multiplies, so that a
     * device computing the same scalars gets the same bits. {@link Math#pow} promises no particular
     * rounding and CUDA's pow differs from it in the last ulp. Its relative error is at most about
     * {@code exponent} double ulps, far below float32 precision.
     */
    public static double powerBySquaring(double base, long exponent) {
        double result = 1.0;
        double square = base;
        for (long e = exponent; e > 0; e >>>= 1) {
            if ((e & 1) != 0) result *= square;
            square *= square;
        }
        return result;
    }

    // ---- exp, log and real powers for per-step scalars ----
    // Math.exp/log/pow promise no particular rounding, and CUDA's differ from Java's in the last
    // bits, so scalars that need them use these: short, fixed sequences of IEEE double operations
    // (no fused multiply-add), written out identically in kernels/fusedopt_scalars.cuh (fo_log,
    // fo_exp, fo_pow), so host and device get the same bits. Accuracy: a few double ulps, far
    // below the float32 rounding the scalars then get.

    private static final double LN2_HI = 6.93147180369123816490e-01; // ln 2 in its high 32 bits (fdlibm)
    private static final double LN2_LO = 1.90821492927058770002e-10; // ln 2 - LN2_HI
    private static final double INV_LN2 = 1.44269504088896338700e+00;
    private static final double SQRT_HALF = 0.70710678118654752440;

    /**
     * The natural logarithm of {@code x} for finite {@code x > 0} (NaN for anything else): x = m 2^k
     * with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) with s = (m - 1) / (m + 1) by its series to
     * s^25 (|s| < 0.172, so the first term left out is below 2^-66 of the result), plus k ln 2.
     */
    public static double log(double x) {
        if (!(x > 0) || x == Double.POSITIVE_INFINITY) return Double.NaN;
        long bits = Double.doubleToRawLongBits(x);
        int k = 0;
        if (bits < 0x0010000000000000L) { // subnormal: scale into the normal range first (exact)
            x = x * 18014398509481984.0; // 2^54
            bits = Double.doubleToRawLongBits(x);
            k = -54;
        }
        k += (int) (bits >>> 52) - 1023;
        double m = Double.longBitsToDouble((bits & 0x000FFFFFFFFFFFFFL) | 0x3FF0000000000000L); // [1, 2)
        if (m >= 2 * SQRT_HALF) {
            m = m * 0.5;
            k += 1;
        }
        double s = (m - 1.0) / (m + 1.0);
        double z = s * s;
        double series = 1.0 / 25.0;
        for (int n = 23; n >= 1; n -= 2) series = series * z + 1.0 / n;
        double logM = 2.0 * s * series;
        return k * LN2_HI + (logM + k * LN2_LO);
    }

    /**
     * e^x for finite x (NaN for NaN; 0 below -745; infinity above 709.78): x = k ln 2 + r with
     * |r| <= ln 2 / 2, e^r by its Taylor series to r^17 (the first term left out is below 2^-60 of
     * the result), times 2^k.
     */
    public static double exp(double x) {
        if (Double.isNaN(x)) return Double.NaN;
        if (x > 709.78) return Double.POSITIVE_INFINITY;
        if (x < -745.2) return 0.0;
        double k = Math.floor(x * INV_LN2 + 0.5);
        double r = (x - k * LN2_HI) - k * LN2_LO;
        double series = 1.0 / 355687428096000.0; // 1/17!
        double factorial = 355687428096000.0;
        for (int n = 17; n >= 1; n--) {
            factorial = factorial / n;
            series = series * r + 1.0 / factorial;
        }
        return scaleByPowerOfTwo(series, (int) k);
    }

    /** x^y = exp(y log x) for x > 0; 1 for y = 0; NaN for x <= 0 otherwise. */
    public static double pow(double x, double y) {
        if (y == 0.0) return 1.0;
        return exp(y * log(x));
    }

    /** v 2^k by exact multiplications (two steps, so that 2^k itself never overflows or goes subnormal). */
    private static double scaleByPowerOfTwo(double v, int k) {
        int half = k / 2;
        return v * Double.longBitsToDouble((long) (half + 1023) << 52) * Double.longBitsToDouble((long) (k - half + 1023) << 52);
    }
}
