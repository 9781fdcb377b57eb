package io.fusedopt.internal;

import io.fusedopt.Muon;

/**
 * One Muon step of one 2-D tensor in exact mode's float32 operations: the definition the CPU
 * reference backend is to run (work in progress on branch wip-muon: no step program calls it yet;
 * docs/muon.md, /work/notes/muon-status.md).
 *
 * <p>The interpolations are PyTorch's vectorized CPU {@code torch.lerp} (ATen
 * {@code cpu/LerpKernel.cpp}, {@code lerp_vec}): {@code fma(coeff, end - start, base)} with
 * (coeff, base) = (w, start) when |w| &lt; 0.5, else (w - 1, end). The per-step scalars come from the
 * float32 hyper-parameters in double, each rounded once (fusedopt's rule; PyTorch rounds
 * {@code 1 - momentum} computed from the double momentum, which can differ in the last bit).
 */
public final class MuonReference {
    private MuonReference() {}

    /**
     * Updates {@code param} and {@code buffer} (row-major {@code rows x cols}) in place with
     * gradient {@code grad} and learning rate {@code lr} (the schedule's value; the config's own
     * learning rate is not read).
     */
    public static void step(float[] param, float[] grad, float[] buffer, int rows, int cols, Muon config, double lr) {
        float momentum = (float) config.momentum();
        float bufferWeight = (float) (1.0 - momentum);
        float lrFloat = (float) lr;
        float[] update = new float[param.length];
        double sumOfSquares = 0;
        for (int i = 0; i < param.length; i++) {
            buffer[i] = lerp(buffer[i], grad[i], bufferWeight);
            update[i] = config.nesterov() ? lerp(grad[i], buffer[i], momentum) : buffer[i];
            sumOfSquares += (double) update[i] * update[i];
        }
        float[] orthogonal = NewtonSchulz.orthogonalize(update, rows, cols, sumOfSquares,
                (float) config.a(), (float) config.b(), (float) config.c(), (float) config.eps(), config.nsSteps());
        float decay = (float) (1.0 - (double) lrFloat * (float) config.weightDecay());
        float adjustedLr = (float) ((double) lrFloat * lrRatio(config.lrAdjustment(), rows, cols));
        for (int i = 0; i < param.length; i++) {
            param[i] = Math.fma(-adjustedLr, orthogonal[i], param[i] * decay);
        }
    }

    /** The factor of the learning rate for a {@code rows x cols} parameter, in double (PyTorch's {@code _adjust_lr}). */
    public static double lrRatio(Muon.LrAdjustment adjustment, int rows, int cols) {
        return switch (adjustment) {
            case ORIGINAL -> Math.sqrt(Math.max(1.0, (double) rows / cols));
            case MATCH_RMS_ADAMW -> 0.2 * Math.sqrt(Math.max(rows, cols));
        };
    }

    /** PyTorch's vectorized CPU lerp: {@code start + weight * (end - start)} as one fma from the nearer end. */
    static float lerp(float start, float end, float weight) {
        boolean small = Math.abs(weight) < 0.5f;
        return Math.fma(small ? weight : weight - 1f, end - start, small ? start : end);
    }
}
