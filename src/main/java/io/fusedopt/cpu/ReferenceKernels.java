package io.fusedopt.cpu;

import static io.fusedopt.internal.KernelFlags.AMSGRAD;
import static io.fusedopt.internal.KernelFlags.CENTERED;
import static io.fusedopt.internal.KernelFlags.DECOUPLED_DECAY;
import static io.fusedopt.internal.KernelFlags.FIRST_STEP;
import static io.fusedopt.internal.KernelFlags.L2_DECAY;
import static io.fusedopt.internal.KernelFlags.MAXIMIZE;
import static io.fusedopt.internal.KernelFlags.MOMENTUM;
import static io.fusedopt.internal.KernelFlags.NESTEROV;
import static io.fusedopt.internal.KernelFlags.has;
import static io.fusedopt.internal.StepScalars.*;

import io.fusedopt.internal.UpdateKernel;
import java.nio.FloatBuffer;

/**
 * The reference implementation: one plain loop per kernel of kernels/*.cu, performing the same
 * float32 operations in the same order. {@link Math#fma(float, float, float)} stands where the
 * kernels write __fmaf_rn; every other operation is a single, correctly rounded Java float
 * operation, as the kernels' __fmul_rn/__fadd_rn/__fdiv_rn/__fsqrt_rn are. Each method updates the
 * elements [from, to) of one tensor (one chunk of the segment table). Clarity over speed: a fast
 * CPU path is separate work and is tested against this class.
 */
public final class ReferenceKernels {
    private ReferenceKernels() {}

    /** The gradient every family uses: negated for maximize, then plus weight decay (L2). */
    static float effectiveGrad(float g, float p, float weightDecay, int flags) {
        if (has(flags, MAXIMIZE)) g = -g;
        if (has(flags, L2_DECAY)) g = Math.fma(weightDecay, p, g);
        return g;
    }

    /** max(current, candidate) that propagates NaN from either side (kernels: fo_max_nan). */
    static float maxPropagatingNaN(float current, float candidate) {
        return (candidate > current || Float.isNaN(candidate)) ? candidate : current;
    }

    /**
     * Runs {@code kernel} over [from, to) of the operands {param, grad, slot0, slot1, slot2}
     * (null where the variant keeps no such state).
     */
    public static void run(UpdateKernel kernel, FloatBuffer[] o, int from, int to, float[] s, int flags) {
        run(kernel, o, 0, from, to, s, flags);
    }

    /**
     * {@link #run(UpdateKernel, FloatBuffer[], int, int, float[], int)} with the operands at
     * {@code o[first]} to {@code o[first + 4]}: a step program keeps every chunk's operands in one
     * array and passes them where they lie (copying references costs a write barrier each).
     */
    public static void run(UpdateKernel kernel, FloatBuffer[] o, int first, int from, int to, float[] s, int flags) {
        switch (kernel) {
            case SGD -> sgd(o[first], o[first + 1], from, to, s, flags);
            case MOMENTUM_BUFFER -> momentumBuffer(o[first], o[first + 1], o[first + 2], from, to, s, flags);
            case MOMENTUM_VELOCITY -> momentumVelocity(o[first], o[first + 1], o[first + 2], from, to, s, flags);
            case RMSPROP -> rmsProp(o[first], o[first + 1], o[first + 2], o[first + 3], o[first + 4], from, to, s, flags);
            case ADAM -> adam(o[first], o[first + 1], o[first + 2], o[first + 3], o[first + 4], from, to, s, flags);
            case ADAGRAD -> adagrad(o[first], o[first + 1], o[first + 2], from, to, s, flags);
        }
    }

    public static void sgd(FloatBuffer param, FloatBuffer grad, int from, int to, float[] s, int flags) {
        for (int i = from; i < to; i++) {
            float p = param.get(i);
            float g = effectiveGrad(grad.get(i), p, s[SGD_WEIGHT_DECAY], flags);
            param.put(i, Math.fma(s[SGD_NEG_LR], g, p));
        }
    }

    public static void momentumBuffer(FloatBuffer param, FloatBuffer grad, FloatBuffer buffer, int from, int to, float[] s, int flags) {
        float mu = s[MOMENTUM_MU];
        for (int i = from; i < to; i++) {
            float p = param.get(i);
            float g = effectiveGrad(grad.get(i), p, s[MOMENTUM_WEIGHT_DECAY], flags);
            float b = has(flags, FIRST_STEP) ? g : Math.fma(mu, buffer.get(i), s[MOMENTUM_ONE_MINUS_DAMPENING] * g);
            float d = has(flags, NESTEROV) ? Math.fma(mu, b, g) : b;
            buffer.put(i, b);
            param.put(i, Math.fma(s[MOMENTUM_NEG_LR], d, p));
        }
    }

    public static void momentumVelocity(FloatBuffer param, FloatBuffer grad, FloatBuffer velocity, int from, int to, float[] s, int flags) {
        float mu = s[MOMENTUM_MU];
        for (int i = from; i < to; i++) {
            float p = param.get(i);
            float g = effectiveGrad(grad.get(i), p, s[MOMENTUM_WEIGHT_DECAY], flags);
            float a = s[MOMENTUM_NEG_LR] * g;
            float v = Math.fma(mu, velocity.get(i), a);
            velocity.put(i, v);
            param.put(i, has(flags, NESTEROV) ? Math.fma(mu, v, p + a) : p + v);
        }
    }

    /** {@code gradAvg} and {@code momentumBuffer} may be null when the variant does not use them. */
    public static void rmsProp(FloatBuffer param, FloatBuffer grad, FloatBuffer squareAvg, FloatBuffer gradAvg,
                               FloatBuffer momentumBuffer, int from, int to, float[] s, int flags) {
        float alpha = s[RMSPROP_ALPHA];
        float oneMinusAlpha = s[RMSPROP_ONE_MINUS_ALPHA];
        for (int i = from; i < to; i++) {
            float p = param.get(i);
            float g = effectiveGrad(grad.get(i), p, s[RMSPROP_WEIGHT_DECAY], flags);
            float sq = Math.fma(alpha, squareAvg.get(i), oneMinusAlpha * (g * g));
            squareAvg.put(i, sq);
            float avg = sq;
            if (has(flags, CENTERED)) {
                float a = Math.fma(alpha, gradAvg.get(i), oneMinusAlpha * g);
                gradAvg.put(i, a);
                avg = Math.fma(-a, a, sq);
            }
            float step = g / ((float) Math.sqrt(avg) + s[RMSPROP_EPS]);
            if (has(flags, MOMENTUM)) {
                step = Math.fma(s[RMSPROP_MOMENTUM], momentumBuffer.get(i), step);
                momentumBuffer.put(i, step);
            }
            param.put(i, Math.fma(s[RMSPROP_NEG_LR], step, p));
        }
    }

    /** {@code maxExpAvgSq} may be null unless AMSGrad is on. */
    public static void adam(FloatBuffer param, FloatBuffer grad, FloatBuffer expAvg, FloatBuffer expAvgSq,
                            FloatBuffer maxExpAvgSq, int from, int to, float[] s, int flags) {
        for (int i = from; i < to; i++) {
            float p = param.get(i);
            if (has(flags, DECOUPLED_DECAY)) p = p * s[ADAM_DECAY_FACTOR];
            float g = effectiveGrad(grad.get(i), p, s[ADAM_WEIGHT_DECAY], flags);
            float m = Math.fma(s[ADAM_BETA1], expAvg.get(i), s[ADAM_ONE_MINUS_BETA1] * g);
            float v = Math.fma(s[ADAM_BETA2], expAvgSq.get(i), s[ADAM_ONE_MINUS_BETA2] * (g * g));
            expAvg.put(i, m);
            expAvgSq.put(i, v);
            if (has(flags, AMSGRAD)) {
                v = maxPropagatingNaN(maxExpAvgSq.get(i), v);
                maxExpAvgSq.put(i, v);
            }
            float denom = Math.fma((float) Math.sqrt(v), s[ADAM_INV_SQRT_BC2], s[ADAM_EPS]);
            param.put(i, Math.fma(s[ADAM_NEG_STEP_SIZE], m / denom, p));
        }
    }

    public static void adagrad(FloatBuffer param, FloatBuffer grad, FloatBuffer sum, int from, int to, float[] s, int flags) {
        for (int i = from; i < to; i++) {
            float p = param.get(i);
            float g = effectiveGrad(grad.get(i), p, s[ADAGRAD_WEIGHT_DECAY], flags);
            float h = Math.fma(g, g, sum.get(i));
            sum.put(i, h);
            param.put(i, Math.fma(s[ADAGRAD_NEG_CLR], g / ((float) Math.sqrt(h) + s[ADAGRAD_EPS]), p));
        }
    }
}
