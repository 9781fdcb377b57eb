package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Stochastic gradient descent, no momentum (for momentum see {@link Momentum}).
 *
 * <pre>
 *   g' = maximize ? -g : g
 *   g' = fma(weightDecay, p, g')        only when weightDecay != 0 (L2)
 *   p  = fma(-lr, g', p)                 p - lr*g'
 * </pre>
 * Defaults follow PyTorch's {@code torch.optim.SGD}: lr = 1e-3, weightDecay = 0.
 */
public record Sgd(double learningRate, double weightDecay, boolean maximize) implements OptimizerConfig {

    public Sgd {
        Check.learningRate(learningRate);
        Check.nonNegative("weightDecay", weightDecay);
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optWeightDecay(weightDecay).optMaximize(maximize);
    }

    @Override
    public Sgd withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "sgd";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of();
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private double weightDecay;
        private boolean maximize;

        public Builder optLearningRate(double v) { learningRate = v; return this; }
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        public Sgd build() {
            return new Sgd(learningRate, weightDecay, maximize);
        }
    }
}
