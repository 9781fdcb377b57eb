package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * LARS, layer-wise adaptive rate scaling (You et al. 2017, "Large Batch Training of Convolutional
 * Networks"), as the PyTorch LARS of Lightning-Universe/lightning-bolts defines it
 * ({@code pl_bolts/optimizers/lars.py}, the one SimCLR and BYOL reproductions use): SGD with momentum
 * whose decayed gradient is scaled per tensor by a trust ratio. PyTorch itself has no LARS.
 *
 * <p>Per tensor, from the norms of the parameter and of the gradient over the whole tensor (each
 * sum of squares in double in a fixed order, the square roots and the ratio in double, rounded
 * once):
 * <pre>
 *   ratio = trustCoefficient * ||p|| / (||g|| + weightDecay * ||p|| + eps)
 *           where both norms are non-zero and the group does not skip the ratio; else 1
 * </pre>
 * then per element, in float32, in this order:
 * <pre>
 *   g' = maximize ? -g : g
 *   d  = fma(weightDecay, p, g')                        (when weightDecay != 0)
 *   d  = d * ratio                                      (unless the group skips the ratio)
 *   momentum != 0:  b = d at the tensor's first step, else b = fma(momentum, b, (1 - dampening) * d)
 *                   d = nesterov ? fma(momentum, b, d) : b
 *   p  = fma(-lr, d, p)
 * </pre>
 * Where the sources differ: Lightning skips the ratio for every group with weight decay 0; here
 * that is the group's choice ({@code skipTrustRatio}, SimCLR's {@code exclude_from_layer_adaptation}
 * for biases and norms). Where a norm is 0, Lightning also drops the weight decay; here the ratio
 * is 1 and the decay stays, as in SimCLR's LARS and in {@link Lamb}'s rule. Each step runs a norm
 * pass over the group's tensors first (reading the parameter and the gradient), then the update.
 *
 * <p>State: {@link StateKind#MOMENTUM_BUFFER} where momentum is not 0. Defaults follow Lightning's
 * LARS: momentum = 0, dampening = 0, weightDecay = 0, no Nesterov, trustCoefficient = 0.001,
 * eps = 1e-8; Lightning requires lr, and its default here is 1e-3 (as {@link Sgd}'s).
 *
 * @param learningRate     lr, &gt;= 0
 * @param momentum         the momentum factor, &gt;= 0
 * @param dampening        the dampening of the momentum's input, in [0, 1]
 * @param weightDecay      the weight decay coefficient (L2, added to the gradient), &gt;= 0
 * @param nesterov         Nesterov momentum (needs momentum &gt; 0 and dampening 0)
 * @param trustCoefficient the trust coefficient (eta), &gt;= 0
 * @param epsilon          eps in the ratio's denominator, &gt;= 0
 * @param skipTrustRatio   whether this group skips the trust ratio (biases and norms)
 * @param maximize         maximizes the objective instead of minimizing it
 */
public record Lars(double learningRate, double momentum, double dampening, double weightDecay, boolean nesterov,
                   double trustCoefficient, double epsilon, boolean skipTrustRatio, boolean maximize)
        implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use. */
    public Lars {
        Check.learningRate(learningRate);
        Check.nonNegative("momentum", momentum);
        Check.unitInterval("dampening", dampening, true);
        Check.nonNegative("weightDecay", weightDecay);
        Check.nonNegative("trustCoefficient", trustCoefficient);
        Check.nonNegative("epsilon", epsilon);
        if (nesterov && ((float) momentum == 0f || (float) dampening != 0f)) {
            throw new IllegalArgumentException("nesterov needs momentum > 0 and dampening 0, got momentum " + momentum
                    + " and dampening " + dampening);
        }
    }

    /** LARS with Lightning's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optMomentum(momentum).optDampening(dampening)
                .optWeightDecay(weightDecay).optNesterov(nesterov).optTrustCoefficient(trustCoefficient)
                .optEpsilon(epsilon).optSkipTrustRatio(skipTrustRatio).optMaximize(maximize);
    }

    @Override
    public Lars withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "lars";
    }

    @Override
    public List<StateKind> stateKinds() {
        return (float) momentum != 0f ? List.of(StateKind.MOMENTUM_BUFFER) : List.of();
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private double momentum;
        private double dampening;
        private double weightDecay;
        private boolean nesterov;
        private double trustCoefficient = 1e-3;
        private double epsilon = 1e-8;
        private boolean skipTrustRatio;
        private boolean maximize;

        /** The learning rate lr (default 1e-3). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** The momentum factor (default 0: no momentum buffer). */
        public Builder optMomentum(double v) { momentum = v; return this; }
        /** The dampening of the momentum's input (default 0). */
        public Builder optDampening(double v) { dampening = v; return this; }
        /** The weight decay coefficient (default 0). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** Nesterov momentum (default false). */
        public Builder optNesterov(boolean v) { nesterov = v; return this; }
        /** The trust coefficient eta (default 0.001). */
        public Builder optTrustCoefficient(double v) { trustCoefficient = v; return this; }
        /** eps in the trust ratio's denominator (default 1e-8). */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        /** Whether this group skips the trust ratio, as for biases and norms (default false). */
        public Builder optSkipTrustRatio(boolean v) { skipTrustRatio = v; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public Lars build() {
            return new Lars(learningRate, momentum, dampening, weightDecay, nesterov, trustCoefficient, epsilon,
                    skipTrustRatio, maximize);
        }
    }
}
