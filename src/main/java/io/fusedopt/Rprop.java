package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Rprop, resilient backpropagation (PyTorch's {@code torch.optim.Rprop}, its
 * {@code _single_tensor_rprop} in {@code torch/optim/rprop.py}): each element keeps its own step
 * size, grown while its gradient keeps its sign and shrunk when the sign flips, and the parameter
 * moves by that step size against the sign of the gradient; the gradient's magnitude is not used.
 *
 * <p>Per element, in float32, in this order:
 * <pre>
 *   g    = maximize ? -g : g
 *   at the tensor's own first step:  prev = 0,  stepSize = lr_t     (PyTorch's state initialization)
 *   d    = g * prev                                  one rounded multiply
 *   f    = d &gt; 0 ? etaPlus : d &lt; 0 ? etaMinus : d == 0 ? 1 : d    (d NaN: f = NaN)
 *   stepSize = clamp(stepSize * f, stepSizeMin, stepSizeMax)
 *   g    = d &lt; 0 ? +0 : g                            no move after a sign change
 *   p    = p + (-sign(g)) * stepSize                 the product is exact: -+stepSize, or -0
 *   prev = g
 * </pre>
 * with {@code clamp(x, lo, hi) = x < lo ? lo : x > hi ? hi : x} and {@code sign(x) = x > 0 ? 1 :
 * x < 0 ? -1 : x == 0 ? +0 : x}: sign(-0) is +0 as torch.sign's, and a NaN stays NaN through both.
 * Each line is the same float32 operation on the CPU reference, the Vector API path and CUDA
 * ({@code kernels/rprop.cu}); no fused multiply-add is involved. PyTorch's step is the same
 * arithmetic: {@code step_size.mul_(sign).clamp_(min, max)} clamps on both sides whatever the sign
 * (so a learning rate above stepSizeMax is clamped at the first step), and
 * {@code param.addcmul_(grad.sign(), step_size, value=-1)} adds the same exact product
 * {@code (-1 * sign(g)) * stepSize}; for a zero or flipped gradient it is -0, which leaves p as it
 * is, a -0 included. Where d underflows to 0 (tiny gradients) the step size stays as it is, in
 * PyTorch as here.
 *
 * <p>State: {@link StateKind#PREV} (the previous gradient, 0 where the sign flipped) and
 * {@link StateKind#STEP_SIZE}, per element, as PyTorch names them.
 *
 * <p><b>The learning rate is only the initial step size.</b> As PyTorch reads {@code lr} once, when
 * it creates a parameter's state at that parameter's first step, each tensor's step size starts at
 * {@code lr_t}, the rate of the step that is the tensor's own first step: the group's rate at that
 * step times its schedule's factor ({@link ParamGroup#setSchedule}). Rates set or scheduled after a
 * tensor's first step do not change its step sizes (in PyTorch neither); so a schedule only matters
 * for tensors whose first step falls under it, and a rate changed before the first step
 * ({@link ParamGroup#setLearningRate}) is the one used. Before the first step the step_size tensor
 * holds the configuration's lr.
 *
 * <p>Where this differs from PyTorch, and why:
 * <ul>
 * <li>NaN propagates: a NaN gradient makes the element's step size and parameter NaN. PyTorch
 * 1.13's {@code torch.sign} returns 0 for NaN on the CPU, so there a NaN gradient leaves the
 * parameter and step size as they were and is kept as {@code prev}, which then leaves the step size
 * unchanged at the next step too: the failure goes unseen. (The same holds for an infinite gradient
 * at the first step, where d = inf * 0 is NaN.) Finite gradients give PyTorch's results.</li>
 * <li>Weight decay: PyTorch's Rprop has none, and neither has this one; {@link Builder#optWeightDecay}
 * accepts only 0 (so that generic code such as {@code toBuilder().optWeightDecay(0)} works) and
 * refuses any other value.</li>
 * <li>The step sizes are validated (PyTorch checks only lr and the etas): 0 &lt;= stepSizeMin
 * &lt;= stepSizeMax.</li>
 * </ul>
 * Defaults follow PyTorch: lr = 1e-2, etas = (etaMinus, etaPlus) = (0.5, 1.2), step sizes =
 * (stepSizeMin, stepSizeMax) = (1e-6, 50), and PyTorch's rule 0 &lt; etaMinus &lt; 1 &lt; etaPlus,
 * checked on the float32 values the kernels use.
 */
public record Rprop(double learningRate, double etaMinus, double etaPlus, double stepSizeMin, double stepSizeMax,
                    boolean maximize) implements OptimizerConfig {

    /**
     * Validates every value as the float32 the kernels use.
     *
     * @throws IllegalArgumentException naming the value outside its domain
     */
    public Rprop {
        Check.learningRate(learningRate);
        Check.positive("etaMinus", etaMinus);
        if (!((float) etaMinus < 1f)) throw etaOutside("etaMinus", etaMinus, "< 1");
        Check.positive("etaPlus", etaPlus);
        if (!((float) etaPlus > 1f)) throw etaOutside("etaPlus", etaPlus, "> 1");
        Check.nonNegative("stepSizeMin", stepSizeMin);
        Check.nonNegative("stepSizeMax", stepSizeMax);
        if ((float) stepSizeMin > (float) stepSizeMax) {
            throw new IllegalArgumentException("stepSizeMin must be <= stepSizeMax in float32, got stepSizeMin=" + stepSizeMin
                    + ", stepSizeMax=" + stepSizeMax);
        }
    }

    private static IllegalArgumentException etaOutside(String name, double value, String domain) {
        float f = (float) value;
        return new IllegalArgumentException(name + " must be " + domain + " in float32 (the value the kernels use; PyTorch's"
                + " rule is 0 < etaMinus < 1 < etaPlus), got " + value + ((double) f != value ? ", which rounds to " + f : ""));
    }

    /** Rprop with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optEtas(etaMinus, etaPlus).optStepSizes(stepSizeMin, stepSizeMax)
                .optMaximize(maximize);
    }

    /**
     * A copy with another learning rate. It is the initial step size of the tensors whose first
     * step is still to come; step sizes already set keep their values (see the class comment).
     */
    @Override
    public Rprop withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "rprop";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.PREV, StateKind.STEP_SIZE);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-2;
        private double etaMinus = 0.5;
        private double etaPlus = 1.2;
        private double stepSizeMin = 1e-6;
        private double stepSizeMax = 50;
        private boolean maximize;

        /** The initial step size of every element (PyTorch's {@code lr}; see {@link Rprop}). */
        @Override
        public Builder optLearningRate(double v) { learningRate = v; return this; }

        /** PyTorch's {@code etas}: the factors that shrink (etaMinus) and grow (etaPlus) a step size. */
        public Builder optEtas(double etaMinus, double etaPlus) {
            this.etaMinus = etaMinus;
            this.etaPlus = etaPlus;
            return this;
        }

        /** PyTorch's {@code step_sizes}: the bounds every step size is clamped to. */
        public Builder optStepSizes(double stepSizeMin, double stepSizeMax) {
            this.stepSizeMin = stepSizeMin;
            this.stepSizeMax = stepSizeMax;
            return this;
        }

        /**
         * Rprop has no weight decay (as PyTorch's): accepts 0, so that code written for every
         * algorithm ({@code toBuilder().optWeightDecay(0)}) works, and refuses anything else.
         *
         * @throws IllegalArgumentException for any value but 0; the builder is unchanged then
         */
        @Override
        public Builder optWeightDecay(double v) {
            if (v != 0) {
                throw new IllegalArgumentException("weightDecay must be 0 for Rprop, got " + v
                        + ": Rprop has no weight decay (neither has torch.optim.Rprop)");
            }
            return this;
        }

        @Override
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        @Override
        public Rprop build() {
            return new Rprop(learningRate, etaMinus, etaPlus, stepSizeMin, stepSizeMax, maximize);
        }
    }
}
