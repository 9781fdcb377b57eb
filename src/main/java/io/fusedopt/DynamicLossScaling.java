package io.fusedopt;

import io.fusedopt.internal.Check;

/**
 * Dynamic loss scaling with {@code torch.amp.GradScaler}'s rule, run by the finalize kernel on the
 * device (no host synchronization per step; it works inside a captured step). Turned on with
 * {@link DeviceOptimizer.Builder#optDynamicLossScaling}, together with
 * {@link NonFinitePolicy#SKIP_STEP}. To scale the loss without waiting for the device, give your
 * loss kernel {@link DeviceOptimizer#lossScaleDevicePointer()} ({@link DeviceOptimizer#gradScale()}
 * waits for the queued steps on CUDA).
 *
 * <p>Each step reads the gradient as {@code g * float32(1.0 / scale)} (the inverse computed in
 * double and rounded once, as GradScaler's unscale). After the step's non-finite verdict:
 * <pre>
 *   non-finite gradient:  the step is skipped (nothing changes, the step counter and so the
 *                         learning-rate schedule do not advance); scale = scale * backoffFactor;
 *                         tracker = 0
 *   finite gradient:      tracker + 1 == growthInterval ? (scale = scale * growthFactor when that
 *                         is finite in float32; tracker = 0) : tracker = tracker + 1
 * </pre>
 * The scale is a float32; each product is the float32 scale times the double factor, computed in
 * double and rounded once to float32, as PyTorch's {@code torch._amp_update_scale_} does (so a
 * backoff of 0.3 from 360 gives exactly 108, on every backend). Defaults are GradScaler's: initial
 * scale 2^16, growth factor 2, backoff factor 0.5, growth interval 2000. The initial scale is
 * checked as the float32 it becomes; the factors are used as the doubles given.
 *
 * @param initialScale the scale of the first step (finite, > 0, with a finite non-zero float32 inverse)
 * @param growthFactor the factor of a growth (finite, > 1)
 * @param backoffFactor the factor of a backoff (in (0, 1))
 * @param growthInterval clean steps in a row before the scale grows (>= 1)
 */
public record DynamicLossScaling(double initialScale, double growthFactor, double backoffFactor, int growthInterval) {

    public DynamicLossScaling {
        Check.positive("initialScale", initialScale);
        float inverse = (float) (1.0 / (float) initialScale);
        if (inverse == 0f || Float.isInfinite(inverse)) {
            throw new IllegalArgumentException("initialScale " + initialScale + " has no finite non-zero float32 inverse");
        }
        if (!(growthFactor > 1) || Double.isInfinite(growthFactor)) {
            throw new IllegalArgumentException("growthFactor must be > 1 and finite, got " + growthFactor);
        }
        if (!(backoffFactor > 0 && backoffFactor < 1)) {
            throw new IllegalArgumentException("backoffFactor must be in (0, 1), got " + backoffFactor);
        }
        if (growthInterval < 1) throw new IllegalArgumentException("growthInterval must be >= 1, got " + growthInterval);
    }

    /** GradScaler's defaults: 2^16, 2, 0.5, 2000. */
    public static DynamicLossScaling gradScalerDefaults() {
        return builder().build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        return new Builder().optInitialScale(initialScale).optGrowthFactor(growthFactor).optBackoffFactor(backoffFactor)
                .optGrowthInterval(growthInterval);
    }

    /** Builder; every value is optional (GradScaler's defaults). */
    public static final class Builder {
        private double initialScale = 65536.0;
        private double growthFactor = 2.0;
        private double backoffFactor = 0.5;
        private int growthInterval = 2000;

        private Builder() {}

        public Builder optInitialScale(double v) {
            initialScale = v;
            return this;
        }

        public Builder optGrowthFactor(double v) {
            growthFactor = v;
            return this;
        }

        public Builder optBackoffFactor(double v) {
            backoffFactor = v;
            return this;
        }

        public Builder optGrowthInterval(int v) {
            growthInterval = v;
            return this;
        }

        /** @throws IllegalArgumentException naming the value out of range */
        public DynamicLossScaling build() {
            return new DynamicLossScaling(initialScale, growthFactor, backoffFactor, growthInterval);
        }
    }
}
