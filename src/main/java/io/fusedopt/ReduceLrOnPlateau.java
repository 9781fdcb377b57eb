package io.fusedopt;

import io.fusedopt.internal.Check;

/**
 * PyTorch's {@code ReduceLROnPlateau}, on the host: it needs a metric (a validation loss) that only
 * the caller has, so it is not part of the device step. Each {@link #step(double)} compares the
 * metric with the best so far; after more than {@code patience} calls without improvement it
 * multiplies every group's learning rate by {@code factor} (not below {@code minLearningRate}),
 * through {@link ParamGroup#setLearningRate}, so a group's device schedule, if any, keeps
 * multiplying the new rate. Rule, as PyTorch's:
 * <pre>
 *   improved = mode MIN: metric &lt; best * (1 - threshold)  (relative) or metric &lt; best - threshold (absolute)
 *              mode MAX: metric &gt; best * (1 + threshold)  (relative) or metric &gt; best + threshold (absolute)
 *   improved ? (best = metric, bad = 0) : bad += 1
 *   cooldown &gt; 0 ? (cooldown -= 1, bad = 0)
 *   bad &gt; patience ? (reduce every group: lr = max(lr * factor, minLearningRate), applied when it
 *                     lowers lr by more than 1e-8; cooldown = cooldownSteps; bad = 0)
 * </pre>
 * A reduced rate that rounds to 0 in float32 is set to 0. Not thread-safe on its own; its state
 * ({@link #best()}, {@link #badSteps()}, {@link #cooldownLeft()}) is the caller's to keep with a
 * checkpoint ({@link #restore}).
 */
public final class ReduceLrOnPlateau {
    /** Whether a lower ({@code MIN}) or a higher ({@code MAX}) metric is better. */
    public enum Mode { MIN, MAX }

    private static final double EPS = 1e-8;

    private final DeviceOptimizer optimizer;
    private final Mode mode;
    private final double factor;
    private final int patience;
    private final double threshold;
    private final boolean relative;
    private final int cooldown;
    private final double minLearningRate;
    private double best;
    private int badSteps;
    private int cooldownLeft;

    private ReduceLrOnPlateau(DeviceOptimizer optimizer, Builder b) {
        this.optimizer = optimizer;
        this.mode = b.mode;
        this.factor = b.factor;
        this.patience = b.patience;
        this.threshold = b.threshold;
        this.relative = b.relative;
        this.cooldown = b.cooldown;
        this.minLearningRate = b.minLearningRate;
        this.best = mode == Mode.MIN ? Double.POSITIVE_INFINITY : Double.NEGATIVE_INFINITY;
    }

    /** A builder for {@code optimizer}'s groups, with PyTorch's defaults (MIN, 0.1, 10, 1e-4 relative, 0, 0). */
    public static Builder builder(DeviceOptimizer optimizer) {
        Check.notNull("optimizer", optimizer);
        return new Builder(optimizer);
    }

    /**
     * Takes one metric; returns true when it reduced the learning rates.
     *
     * @throws IllegalArgumentException for a NaN metric; nothing changes then
     */
    public boolean step(double metric) {
        if (Double.isNaN(metric)) throw new IllegalArgumentException("the metric is NaN; nothing was changed");
        synchronized (optimizer) {
            optimizer.ensureUsable();
            if (improves(metric)) {
                best = metric;
                badSteps = 0;
            } else {
                badSteps++;
            }
            if (cooldownLeft > 0) {
                cooldownLeft--;
                badSteps = 0;
            }
            if (badSteps <= patience) return false;
            boolean reduced = false;
            for (ParamGroup g : optimizer.groups()) {
                double old = g.currentConfig().learningRate();
                double lowered = Math.max(old * factor, minLearningRate);
                if (old - lowered > EPS) {
                    g.setLearningRate((float) lowered == 0f ? 0.0 : lowered);
                    reduced = true;
                }
            }
            cooldownLeft = cooldown;
            badSteps = 0;
            return reduced;
        }
    }

    private boolean improves(double metric) {
        if (mode == Mode.MIN) return relative ? metric < best * (1 - threshold) : metric < best - threshold;
        return relative ? metric > best * (threshold + 1) : metric > best + threshold;
    }

    /** The best metric so far (infinite before the first). */
    public double best() {
        return best;
    }

    /** Calls without improvement since the last improvement, reduction or cooldown step. */
    public int badSteps() {
        return badSteps;
    }

    /** Calls left in the cooldown after a reduction. */
    public int cooldownLeft() {
        return cooldownLeft;
    }

    /** Restores the state read by {@link #best()}, {@link #badSteps()} and {@link #cooldownLeft()} (a resume). */
    public void restore(double restoredBest, int restoredBadSteps, int restoredCooldownLeft) {
        if (Double.isNaN(restoredBest) || restoredBadSteps < 0 || restoredCooldownLeft < 0) {
            throw new IllegalArgumentException("plateau state must be a non-NaN best and counts >= 0, got " + restoredBest + ", "
                    + restoredBadSteps + ", " + restoredCooldownLeft);
        }
        best = restoredBest;
        badSteps = restoredBadSteps;
        cooldownLeft = restoredCooldownLeft;
    }

    /** Builder; every value is optional. */
    public static final class Builder {
        private final DeviceOptimizer optimizer;
        private Mode mode = Mode.MIN;
        private double factor = 0.1;
        private int patience = 10;
        private double threshold = 1e-4;
        private boolean relative = true;
        private int cooldown;
        private double minLearningRate;

        private Builder(DeviceOptimizer optimizer) {
            this.optimizer = optimizer;
        }

        public Builder optMode(Mode v) {
            Check.notNull("mode", v);
            mode = v;
            return this;
        }

        /** The factor of a reduction, in (0, 1). */
        public Builder optFactor(double v) {
            if (!(v > 0 && v < 1)) throw new IllegalArgumentException("factor must be in (0, 1), got " + v);
            factor = v;
            return this;
        }

        public Builder optPatience(int v) {
            if (v < 0) throw new IllegalArgumentException("patience must be >= 0, got " + v);
            patience = v;
            return this;
        }

        /** The least improvement that counts; {@code relative} (the default) or absolute ({@code threshold_mode}). */
        public Builder optThreshold(double v, boolean isRelative) {
            if (!(v >= 0) || Double.isInfinite(v)) throw new IllegalArgumentException("threshold must be finite and >= 0, got " + v);
            threshold = v;
            relative = isRelative;
            return this;
        }

        public Builder optCooldown(int v) {
            if (v < 0) throw new IllegalArgumentException("cooldown must be >= 0, got " + v);
            cooldown = v;
            return this;
        }

        public Builder optMinLearningRate(double v) {
            Check.learningRate(v);
            minLearningRate = v;
            return this;
        }

        public ReduceLrOnPlateau build() {
            return new ReduceLrOnPlateau(optimizer, this);
        }
    }
}
