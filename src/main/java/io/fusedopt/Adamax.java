package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Adamax, the infinity-norm variant of Adam (Kingma and Ba, section 7.1), as PyTorch's
 * {@code torch.optim.Adamax} computes it ({@code _single_tensor_adamax} in
 * {@code torch/optim/adamax.py}, 1.13).
 *
 * <p>With t the step counter (starting at 1), in this order, each line one float32 rounding per
 * operation and {@code fma} one rounding in all:
 * <pre>
 *   clr = lr / (1 - beta1^t)                         on the host, in double, rounded once, each step
 *   g'  = maximize ? -g : g;  g' = fma(weightDecay, p, g') when weightDecay != 0
 *   m   = fma(beta1, m, (1 - beta1) * g')
 *   u   = max(beta2 * u, |g'| + eps)                 NaN from either side propagates
 *   p   = fma(-clr, m / u, p)
 * </pre>
 * m is {@link StateKind#EXP_AVG}, u is {@link StateKind#EXP_INF}; both start at 0 and neither is
 * bias-corrected in place. {@code |g'|} clears the sign bit (so |-0| = +0 and |NaN| is a NaN); the
 * max returns the second operand where it is larger or NaN, else the first, so a NaN in u or in the
 * gradient stays in u, as with PyTorch's {@code amax}. 1 - beta1 is computed from the float32 beta1.
 * Defaults follow PyTorch: lr = 2e-3, betas = (0.9, 0.999), eps = 1e-8, weightDecay = 0 (L2: added
 * to the gradient). Unlike PyTorch, eps must be &gt; 0: with eps = 0 a zero gradient at the first
 * step makes u = 0 and the update 0/0.
 */
public record Adamax(double learningRate, double beta1, double beta2, double epsilon, double weightDecay,
                     boolean maximize) implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use, naming the one refused. */
    public Adamax {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
    }

    /** Adamax with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optMaximize(maximize);
    }

    @Override
    public Adamax withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "adamax";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.EXP_AVG, StateKind.EXP_INF);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 2e-3;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double epsilon = 1e-8;
        private double weightDecay;
        private boolean maximize;

        @Override
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** PyTorch's {@code betas}: beta1 for m, beta2 for the decay of u. */
        public Builder optBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        /** eps, added to |g'| before the max. */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        @Override
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        @Override
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        @Override
        public Adamax build() {
            return new Adamax(learningRate, beta1, beta2, epsilon, weightDecay, maximize);
        }
    }
}
