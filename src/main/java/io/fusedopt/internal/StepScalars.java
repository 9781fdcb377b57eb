package io.fusedopt.internal;

import io.fusedopt.Adagrad;
import io.fusedopt.Adam;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.RmsProp;
import io.fusedopt.Sgd;

/**
 * The per-step scalars of every kernel, computed once on the host and handed unchanged to both
 * backends: this class is the single place where hyper-parameters and the step counter become the
 * float32 values the elementwise updates use. Rule: each hyper-parameter is rounded to float32
 * first; anything derived from it is computed in double from that float32 value and rounded once.
 *
 * <p>The index constants give the layout of each kernel's scalar struct in
 * kernels/fusedopt_scalars.cuh, which computes the same values on the device from the same
 * float32 hyper-parameters.
 */
public final class StepScalars {
    private StepScalars() {}

    // struct SgdScalars
    public static final int SGD_NEG_LR = 0, SGD_WEIGHT_DECAY = 1, SGD_COUNT = 2;
    // struct MomentumScalars
    public static final int MOMENTUM_NEG_LR = 0, MOMENTUM_WEIGHT_DECAY = 1, MOMENTUM_MU = 2,
            MOMENTUM_ONE_MINUS_DAMPENING = 3, MOMENTUM_COUNT = 4;
    // struct RmsPropScalars
    public static final int RMSPROP_NEG_LR = 0, RMSPROP_WEIGHT_DECAY = 1, RMSPROP_ALPHA = 2,
            RMSPROP_ONE_MINUS_ALPHA = 3, RMSPROP_EPS = 4, RMSPROP_MOMENTUM = 5, RMSPROP_COUNT = 6;
    // struct AdamScalars
    public static final int ADAM_NEG_STEP_SIZE = 0, ADAM_INV_SQRT_BC2 = 1, ADAM_BETA1 = 2,
            ADAM_ONE_MINUS_BETA1 = 3, ADAM_BETA2 = 4, ADAM_ONE_MINUS_BETA2 = 5, ADAM_EPS = 6,
            ADAM_WEIGHT_DECAY = 7, ADAM_DECAY_FACTOR = 8, ADAM_COUNT = 9;
    // struct AdagradScalars
    public static final int ADAGRAD_NEG_CLR = 0, ADAGRAD_WEIGHT_DECAY = 1, ADAGRAD_EPS = 2, ADAGRAD_COUNT = 3;

    /** Floats per group in the hyper-parameter table (FO_HYPER_STRIDE). */
    public static final int HYPER_STRIDE = 8;
    /** Floats per group in the per-step scalar table (FO_SCALAR_STRIDE). */
    public static final int SCALAR_STRIDE = 16;
    // The hyper-parameter table (FO_H_* in kernels/fusedopt_scalars.cuh).
    public static final int H_LR = 0, H_WEIGHT_DECAY = 1, H_A = 2, H_B = 3, H_C = 4;

    /**
     * A group's hyper-parameters as the float32 values the scalar computation starts from:
     * learning rate, weight decay, then per algorithm (H_A, H_B, H_C) momentum and dampening;
     * alpha, eps and momentum (RMSProp); beta1, beta2 and eps (Adam); lr decay and eps (Adagrad).
     */
    public static float[] hyperParameters(OptimizerConfig config) {
        float[] h = new float[HYPER_STRIDE];
        h[H_LR] = f(config.learningRate());
        if (config instanceof Sgd c) {
            h[H_WEIGHT_DECAY] = f(c.weightDecay());
        } else if (config instanceof Momentum c) {
            h[H_WEIGHT_DECAY] = f(c.weightDecay());
            h[H_A] = f(c.momentum());
            h[H_B] = f(c.dampening());
        } else if (config instanceof RmsProp c) {
            h[H_WEIGHT_DECAY] = f(c.weightDecay());
            h[H_A] = f(c.alpha());
            h[H_B] = f(c.epsilon());
            h[H_C] = f(c.momentum());
        } else if (config instanceof Adam c) {
            h[H_WEIGHT_DECAY] = f(c.weightDecay());
            h[H_A] = f(c.beta1());
            h[H_B] = f(c.beta2());
            h[H_C] = f(c.epsilon());
        } else if (config instanceof Adagrad c) {
            h[H_WEIGHT_DECAY] = f(c.weightDecay());
            h[H_A] = f(c.lrDecay());
            h[H_B] = f(c.epsilon());
        } else {
            throw new IllegalArgumentException("unknown configuration " + config);
        }
        return h;
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
     * {@code out[outOffset...]}. The device computes the same in fo_step_scalars
     * (kernels/fusedopt_scalars.cuh), operation for operation.
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
        double lr = lrF;
        float wd = hyper[hyperOffset + H_WEIGHT_DECAY];
        float a = hyper[hyperOffset + H_A];
        float b = hyper[hyperOffset + H_B];
        float c = hyper[hyperOffset + H_C];
        int o = outOffset;
        switch (kernel) {
            case SGD -> {
                out[o + SGD_NEG_LR] = -lrF;
                out[o + SGD_WEIGHT_DECAY] = wd;
            }
            case MOMENTUM_BUFFER, MOMENTUM_VELOCITY -> {
                out[o + MOMENTUM_NEG_LR] = -lrF;
                out[o + MOMENTUM_WEIGHT_DECAY] = wd;
                out[o + MOMENTUM_MU] = a;
                out[o + MOMENTUM_ONE_MINUS_DAMPENING] = (float) (1.0 - b);
            }
            case RMSPROP -> {
                out[o + RMSPROP_NEG_LR] = -lrF;
                out[o + RMSPROP_WEIGHT_DECAY] = wd;
                out[o + RMSPROP_ALPHA] = a;
                out[o + RMSPROP_ONE_MINUS_ALPHA] = (float) (1.0 - a);
                out[o + RMSPROP_EPS] = b;
                out[o + RMSPROP_MOMENTUM] = c;
            }
            case ADAM -> {
                double beta1 = a;
                double beta2 = b;
                double bc1 = 1.0 - powerBySquaring(beta1, step);
                double bc2 = 1.0 - powerBySquaring(beta2, step);
                if (KernelFlags.has(flags, KernelFlags.STEP_SIZE_FORM)) {
                    out[o + ADAM_NEG_STEP_SIZE] = (float) -(lr * Math.sqrt(bc2) / bc1);
                    out[o + ADAM_INV_SQRT_BC2] = 1f;
                } else {
                    out[o + ADAM_NEG_STEP_SIZE] = (float) -(lr / bc1);
                    out[o + ADAM_INV_SQRT_BC2] = (float) (1.0 / Math.sqrt(bc2));
                }
                out[o + ADAM_BETA1] = a;
                out[o + ADAM_ONE_MINUS_BETA1] = (float) (1.0 - beta1);
                out[o + ADAM_BETA2] = b;
                out[o + ADAM_ONE_MINUS_BETA2] = (float) (1.0 - beta2);
                out[o + ADAM_EPS] = c;
                out[o + ADAM_WEIGHT_DECAY] = wd;
                out[o + ADAM_DECAY_FACTOR] = (float) (1.0 - lr * wd);
            }
            case ADAGRAD -> {
                double decayed = 1.0 + (double) (step - 1) * a;
                out[o + ADAGRAD_NEG_CLR] = (float) -(lr / decayed);
                out[o + ADAGRAD_WEIGHT_DECAY] = wd;
                out[o + ADAGRAD_EPS] = b;
            }
        }
    }

    /**
     * base^exponent by binary exponentiation: a fixed sequence of IEEE double multiplies, so that a
     * device computing the same scalars (the single-launch control block) gets the same bits.
     * {@link Math#pow} promises no particular rounding and CUDA's pow differs from it in the last ulp.
     * Its relative error is at most about {@code exponent} double ulps, far below float32 precision.
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

    private static float f(double v) {
        return (float) v;
    }
}
