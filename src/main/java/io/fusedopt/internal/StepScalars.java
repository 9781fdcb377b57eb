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
 * <p>The index constants give the layout of each kernel's scalar struct in kernels/*.cu.
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

    /**
     * Writes the scalars of {@code config} for step {@code step} (1-based) into {@code out}, whose
     * length must be the kernel's scalar count.
     */
    public static void compute(OptimizerConfig config, long step, float[] out) {
        if (step < 1) {
            throw new IllegalArgumentException("step counts from 1, got " + step);
        }
        if (config instanceof Sgd c) {
            out[SGD_NEG_LR] = -f(c.learningRate());
            out[SGD_WEIGHT_DECAY] = f(c.weightDecay());
        } else if (config instanceof Momentum c) {
            out[MOMENTUM_NEG_LR] = -f(c.learningRate());
            out[MOMENTUM_WEIGHT_DECAY] = f(c.weightDecay());
            out[MOMENTUM_MU] = f(c.momentum());
            out[MOMENTUM_ONE_MINUS_DAMPENING] = (float) (1.0 - f(c.dampening()));
        } else if (config instanceof RmsProp c) {
            out[RMSPROP_NEG_LR] = -f(c.learningRate());
            out[RMSPROP_WEIGHT_DECAY] = f(c.weightDecay());
            out[RMSPROP_ALPHA] = f(c.alpha());
            out[RMSPROP_ONE_MINUS_ALPHA] = (float) (1.0 - f(c.alpha()));
            out[RMSPROP_EPS] = f(c.epsilon());
            out[RMSPROP_MOMENTUM] = f(c.momentum());
        } else if (config instanceof Adam c) {
            double lr = f(c.learningRate());
            double beta1 = f(c.beta1());
            double beta2 = f(c.beta2());
            double bc1 = 1.0 - powerBySquaring(beta1, step);
            double bc2 = 1.0 - powerBySquaring(beta2, step);
            boolean paper = c.form() == Adam.Form.PAPER;
            out[ADAM_NEG_STEP_SIZE] = (float) -(paper ? lr / bc1 : lr * Math.sqrt(bc2) / bc1);
            out[ADAM_INV_SQRT_BC2] = paper ? (float) (1.0 / Math.sqrt(bc2)) : 1f;
            out[ADAM_BETA1] = (float) beta1;
            out[ADAM_ONE_MINUS_BETA1] = (float) (1.0 - beta1);
            out[ADAM_BETA2] = (float) beta2;
            out[ADAM_ONE_MINUS_BETA2] = (float) (1.0 - beta2);
            out[ADAM_EPS] = f(c.epsilon());
            out[ADAM_WEIGHT_DECAY] = f(c.weightDecay());
            out[ADAM_DECAY_FACTOR] = (float) (1.0 - lr * f(c.weightDecay()));
        } else if (config instanceof Adagrad c) {
            double clr = f(c.learningRate()) / (1.0 + (step - 1) * (double) f(c.lrDecay()));
            out[ADAGRAD_NEG_CLR] = (float) -clr;
            out[ADAGRAD_WEIGHT_DECAY] = f(c.weightDecay());
            out[ADAGRAD_EPS] = f(c.epsilon());
        } else {
            throw new IllegalArgumentException("unknown configuration " + config);
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
