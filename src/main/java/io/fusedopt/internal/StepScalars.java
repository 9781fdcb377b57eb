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
}
