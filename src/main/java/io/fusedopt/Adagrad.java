package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Adagrad (PyTorch's {@code torch.optim.Adagrad}).
 *
 * <pre>
 *   clr = lr / (1 + (t - 1) * lrDecay)          on the host, in double, each step
 *   g'  = maximize ? -g : g;  g' = fma(weightDecay, p, g') when weightDecay != 0
 *   h   = fma(g', g', h)                         h + g'^2; h starts at initialAccumulatorValue
 *   p   = fma(-clr, g' / (sqrt(h) + eps), p)
 * </pre>
 * State: {@link StateKind#SUM}. Defaults follow PyTorch: lr = 1e-2, lrDecay = 0, weightDecay = 0,
 * initialAccumulatorValue = 0, eps = 1e-10.
 */
public record Adagrad(double learningRate, double lrDecay, double weightDecay, double initialAccumulatorValue,
                      double epsilon, boolean maximize) implements OptimizerConfig {

    public Adagrad {
        Check.learningRate(learningRate);
        Check.nonNegative("lrDecay", lrDecay);
        Check.nonNegative("weightDecay", weightDecay);
        Check.nonNegative("initialAccumulatorValue", initialAccumulatorValue);
        Check.positive("epsilon", epsilon);
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optLrDecay(lrDecay).optWeightDecay(weightDecay)
                .optInitialAccumulatorValue(initialAccumulatorValue).optEpsilon(epsilon).optMaximize(maximize);
    }

    @Override
    public Adagrad withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "adagrad";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.SUM);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-2;
        private double lrDecay;
        private double weightDecay;
        private double initialAccumulatorValue;
        private double epsilon = 1e-10;
        private boolean maximize;

        public Builder optLearningRate(double v) { learningRate = v; return this; }
        public Builder optLrDecay(double v) { lrDecay = v; return this; }
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        public Builder optInitialAccumulatorValue(double v) { initialAccumulatorValue = v; return this; }
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        public Adagrad build() {
            return new Adagrad(learningRate, lrDecay, weightDecay, initialAccumulatorValue, epsilon, maximize);
        }
    }
}
