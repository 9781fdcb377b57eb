package io.fusedopt.internal;

/**
 * The step's control block (FoControl in kernels/fusedopt_common.cuh) and the finalize
 * computation that fusedopt_finalize_step (kernels/control.cu) performs on the device, line for
 * line. The CPU backend runs {@link #finalizeStep} itself; the CUDA backend keeps the block in
 * device memory and reads it back into this class only when asked.
 *
 * <p>Inputs, written by the host between steps: {@link #invGradScale} (with a fixed loss scale),
 * {@link #maxGradNorm}, {@link #checkGrads}, {@link #skipNonFinite}, and for dynamic loss scaling
 * {@link #dynamicScaling}, {@link #growthFactor}, {@link #backoffFactor}, {@link #growthInterval}.
 * The scaler's state ({@link #lossScale}, {@link #growthTracker}, the counts, and with it
 * {@link #invGradScale}) is written by the host only to start or restore it ({@link #setScalerState}).
 * Outputs of the last step: everything else.
 */
public final class StepControl {
    /** Byte size and field offsets of FoControl. */
    public static final int BYTES = 120;
    public static final int OFFSET_STEP = 0, OFFSET_SKIPPED_STEPS = 8, OFFSET_GRAD_SQ_SUM = 16,
            OFFSET_INV_GRAD_SCALE = 24, OFFSET_MAX_GRAD_NORM = 28, OFFSET_GRAD_NORM = 32, OFFSET_CLIP_COEF = 36,
            OFFSET_CHECK_GRADS = 40, OFFSET_SKIP_NONFINITE = 44, OFFSET_FOUND_NONFINITE = 48, OFFSET_SKIP = 52,
            OFFSET_STEP_INV_GRAD_SCALE = 56, OFFSET_DYNAMIC_SCALING = 60, OFFSET_LOSS_SCALE = 64, OFFSET_GROWTH_TRACKER = 68,
            OFFSET_GROWTH_INTERVAL = 72, OFFSET_GROWTH_FACTOR = 80, OFFSET_BACKOFF_FACTOR = 88, OFFSET_SCALE_GROWTHS = 96,
            OFFSET_SCALE_BACKOFFS = 104, OFFSET_ROUNDING_SEED = 112;

    /** Applied steps: the t of the last step that updated the tensors. */
    public long step;
    public long skippedSteps;
    /** Sum of squares of the unscaled gradient (NaN when the gradient was not checked). */
    public double gradSqSum = Double.NaN;
    /** 1 / loss scale for the next step's gradient (an input, or the dynamic scale's inverse). */
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
    /** The inverse scale the last step's updates multiplied the gradient by. */
    public float stepInvGradScale = 1f;
    /** GradScaler's rule updates {@link #lossScale} after every step's verdict. */
    public boolean dynamicScaling;
    public float lossScale = 1f;
    public int growthTracker;
    /** Doubles, as GradScaler's: the float32 scale is multiplied by them in double and rounded once. */
    public double growthFactor;
    public double backoffFactor;
    public int growthInterval;
    public long scaleGrowths;
    public long scaleBackoffs;
    /** The key of stochastic rounding's random bits (an input; {@link Philox}). */
    public long roundingSeed;

    /**
     * Decides the step from the gradient's sum of squares {@code total} (0 when not checked),
     * updates the dynamic loss scale, and writes every entry's scalars and flags (from the entry's
     * own step, the counter minus its offset).
     */
    public void finalizeStep(double total, GroupTable groups) {
        boolean nonFinite = checkGrads && !Double.isFinite(total);
        double norm = Math.sqrt(total);
        gradSqSum = checkGrads ? total : Double.NaN;
        gradNorm = checkGrads ? (float) norm : Float.NaN;
        foundNonFinite = nonFinite;
        float thisStepInvGradScale = invGradScale;
        stepInvGradScale = thisStepInvGradScale;
        if (dynamicScaling) updateLossScale(nonFinite);
        float clip = 1f;
        if (checkGrads && maxGradNorm > 0f) {
            // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6), clamped to at most 1 (NaN stays NaN).
            double coef = (double) maxGradNorm / (norm + 1e-6);
            clip = coef >= 1.0 ? 1f : (float) coef;
        }
        // Written before a skip too, so that a skipped step reports its own factor (0 for an
        // infinite norm, NaN for a NaN), never the previous step's.
        clipCoef = clip;
        if (nonFinite && skipNonFinite) {
            skip = true;
            skippedSteps += 1;
            return;
        }
        skip = false;
        step += 1;
        // The first-step rule (a momentum buffer starts as the gradient) is per entry: see below.
        int stepFlags = (thisStepInvGradScale != 1.0f ? KernelFlags.UNSCALE : 0)
                | (clip != 1f ? KernelFlags.CLIP : 0);
        // The schedule follows the optimizer's counter (LambdaLR per optimizer), whatever the entry's
        // offset: the steps applied before this one (t - 1), plus the skipped ones with the iterations clock.
        long schedulerStep = groups.schedulerStep(step, skippedSteps);
        for (int g = 0; g < groups.count(); g++) {
            float lr = groups.learningRate(g, schedulerStep);
            // Bias corrections, Adagrad's decay and the first-step rule follow the entry's own step.
            long ownStep = step - groups.offset(g);
            StepScalars.compute(groups.kernel(g), groups.hyper(), g * StepScalars.HYPER_STRIDE, lr, groups.staticFlags(g), ownStep,
                    groups.scalars(), g * StepScalars.SCALAR_STRIDE);
            groups.flags()[g] = groups.staticFlags(g) | stepFlags | (ownStep == 1 ? KernelFlags.FIRST_STEP : 0);
        }
    }

    /**
     * GradScaler's update (fo_update_loss_scale): a non-finite gradient multiplies the scale by the
     * backoff factor; {@link #growthInterval} clean steps in a row multiply it by the growth factor
     * (kept only when finite in float32). The next step reads the gradient with the new scale's inverse.
     */
    private void updateLossScale(boolean nonFinite) {
        float scale = lossScale;
        if (nonFinite) {
            scale = scaled(scale, backoffFactor);
            growthTracker = 0;
            scaleBackoffs += 1;
        } else {
            int successful = growthTracker + 1;
            if (successful == growthInterval) {
                float grown = scaled(scale, growthFactor);
                if (Float.isFinite(grown)) {
                    scale = grown;
                    scaleGrowths += 1;
                }
                growthTracker = 0;
            } else {
                growthTracker = successful;
            }
        }
        lossScale = scale;
        invGradScale = inverse(scale);
    }

    /**
     * {@code scale * factor} as torch._amp_update_scale_ computes it: the float32 scale times the
     * double factor, in double, rounded once to float32. Rounding the factor to float32 first
     * differs for factors that are not short in binary (a backoff of 0.3 from 360 gives
     * 108.00000762939453 instead of 108.0), and the runs then diverge.
     */
    static float scaled(float scale, double factor) {
        return (float) ((double) scale * factor);
    }

    /** The inverse a loss scale's gradient is read with: computed in double, rounded once (GradScaler's unscale). */
    public static float inverse(float scale) {
        return (float) (1.0 / (double) scale);
    }

    /** The gradient as the update sees it: unscaled, then clipped (FoGradPrep). */
    public float prepareGrad(float g, int flags) {
        if (KernelFlags.has(flags, KernelFlags.UNSCALE)) g = g * stepInvGradScale;
        if (KernelFlags.has(flags, KernelFlags.CLIP)) g = g * clipCoef;
        return g;
    }

    /**
     * Sets the inputs the host writes between steps. With dynamic scaling the inverse scale is the
     * device's and {@code newInvGradScale} is ignored.
     */
    public void setInputs(float newInvGradScale, float newMaxGradNorm, boolean newCheckGrads, boolean newSkipNonFinite) {
        if (!dynamicScaling) invGradScale = newInvGradScale;
        maxGradNorm = newMaxGradNorm;
        checkGrads = newCheckGrads;
        skipNonFinite = newSkipNonFinite;
    }

    /** Turns dynamic loss scaling on with its factors and interval (an input, set before {@link #setInputs}). */
    public void setDynamicScaling(boolean on, double newGrowthFactor, double newBackoffFactor, int newGrowthInterval) {
        dynamicScaling = on;
        growthFactor = newGrowthFactor;
        backoffFactor = newBackoffFactor;
        growthInterval = newGrowthInterval;
    }

    /** Starts or restores the dynamic scaler: its scale (and so the next step's inverse), tracker and counts. */
    public void setScalerState(float scale, int tracker, long growths, long backoffs) {
        lossScale = scale;
        invGradScale = inverse(scale);
        growthTracker = tracker;
        scaleGrowths = growths;
        scaleBackoffs = backoffs;
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
        c.stepInvGradScale = stepInvGradScale;
        c.dynamicScaling = dynamicScaling;
        c.lossScale = lossScale;
        c.growthTracker = growthTracker;
        c.growthFactor = growthFactor;
        c.backoffFactor = backoffFactor;
        c.growthInterval = growthInterval;
        c.scaleGrowths = scaleGrowths;
        c.scaleBackoffs = scaleBackoffs;
        c.roundingSeed = roundingSeed;
        return c;
    }
}
