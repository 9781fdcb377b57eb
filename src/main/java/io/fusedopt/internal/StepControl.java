package io.fusedopt.internal;

/**
 * The step's control block (FoControl in kernels/fusedopt_common.cuh) and the finalize
 * computation that fusedopt_finalize_step (kernels/control.cu) performs on the device, line for
 * line. The CPU backend runs {@link #finalizeStep} itself; the CUDA backend keeps the block in
 * device memory and reads it back into this class only when asked.
 *
 * <p>Inputs, written by the host between steps: {@link #invGradScale}, {@link #maxGradNorm},
 * {@link #checkGrads}, {@link #skipNonFinite}. Outputs of the last step: everything else.
 */
public final class StepControl {
    /** Byte size and field offsets of FoControl. */
    public static final int BYTES = 64;
    public static final int OFFSET_STEP = 0, OFFSET_SKIPPED_STEPS = 8, OFFSET_GRAD_SQ_SUM = 16,
            OFFSET_INV_GRAD_SCALE = 24, OFFSET_MAX_GRAD_NORM = 28, OFFSET_GRAD_NORM = 32, OFFSET_CLIP_COEF = 36,
            OFFSET_CHECK_GRADS = 40, OFFSET_SKIP_NONFINITE = 44, OFFSET_FOUND_NONFINITE = 48, OFFSET_SKIP = 52;

    /** Applied steps: the t of the last step that updated the tensors. */
    public long step;
    public long skippedSteps;
    /** Sum of squares of the unscaled gradient (NaN when the gradient was not checked). */
    public double gradSqSum = Double.NaN;
    public float invGradScale = 1f;
    /** > 0: the global gradient norm is clipped to it. */
    public float maxGradNorm;
    /** sqrt(gradSqSum) rounded to float32 (NaN when the gradient was not checked). */
    public float gradNorm = Float.NaN;
    public float clipCoef = 1f;
    public boolean checkGrads;
    public boolean skipNonFinite;
    public boolean foundNonFinite;
    /** The last step updated nothing. */
    public boolean skip;

    /**
     * Decides the step from the gradient's sum of squares {@code total} (0 when not checked) and
     * writes every group's scalars and flags.
     */
    public void finalizeStep(double total, GroupTable groups) {
        boolean nonFinite = checkGrads && !Double.isFinite(total);
        double norm = Math.sqrt(total);
        gradSqSum = checkGrads ? total : Double.NaN;
        gradNorm = checkGrads ? (float) norm : Float.NaN;
        foundNonFinite = nonFinite;
        if (nonFinite && skipNonFinite) {
            skip = true;
            skippedSteps += 1;
            return;
        }
        skip = false;
        step += 1;
        float clip = 1f;
        if (checkGrads && maxGradNorm > 0f) {
            // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6), clamped to at most 1 (NaN stays NaN).
            double coef = (double) maxGradNorm / (norm + 1e-6);
            clip = coef >= 1.0 ? 1f : (float) coef;
        }
        clipCoef = clip;
        int stepFlags = (step == 1 ? KernelFlags.FIRST_STEP : 0)
                | (invGradScale != 1.0f ? KernelFlags.UNSCALE : 0)
                | (clip != 1f ? KernelFlags.CLIP : 0);
        for (int g = 0; g < groups.count(); g++) {
            StepScalars.compute(groups.kernel(g), groups.hyper(), g * StepScalars.HYPER_STRIDE, groups.staticFlags(g), step,
                    groups.scalars(), g * StepScalars.SCALAR_STRIDE);
            groups.flags()[g] = groups.staticFlags(g) | stepFlags;
        }
    }

    /** The gradient as the update sees it: unscaled, then clipped (FoGradPrep). */
    public float prepareGrad(float g, int flags) {
        if (KernelFlags.has(flags, KernelFlags.UNSCALE)) g = g * invGradScale;
        if (KernelFlags.has(flags, KernelFlags.CLIP)) g = g * clipCoef;
        return g;
    }

    /** Sets the inputs the host writes between steps. */
    public void setInputs(float newInvGradScale, float newMaxGradNorm, boolean newCheckGrads, boolean newSkipNonFinite) {
        invGradScale = newInvGradScale;
        maxGradNorm = newMaxGradNorm;
        checkGrads = newCheckGrads;
        skipNonFinite = newSkipNonFinite;
    }

    public StepControl copy() {
        StepControl c = new StepControl();
        c.step = step;
        c.skippedSteps = skippedSteps;
        c.gradSqSum = gradSqSum;
        c.invGradScale = invGradScale;
        c.maxGradNorm = maxGradNorm;
        c.gradNorm = gradNorm;
        c.clipCoef = clipCoef;
        c.checkGrads = checkGrads;
        c.skipNonFinite = skipNonFinite;
        c.foundNonFinite = foundNonFinite;
        c.skip = skip;
        return c;
    }
}
