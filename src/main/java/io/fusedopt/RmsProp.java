package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.ArrayList;
import java.util.List;

/**
 * RMSProp, optionally centered and with momentum (PyTorch's {@code torch.optim.RMSprop}).
 *
 * <pre>
 *   g'  = maximize ? -g : g;  g' = fma(weightDecay, p, g') when weightDecay != 0
 *   s   = fma(alpha, s, (1 - alpha) * (g' * g'))
 *   centered:  a = fma(alpha, a, (1 - alpha) * g');  avg = fma(-a, a, s)     s - a^2
 *   otherwise: avg = s
 *   u   = g' / (sqrt(avg) + eps)                    eps outside the root
 *   momentum > 0: b = fma(momentum, b, u);  p = fma(-lr, b, p)
 *   otherwise:    p = fma(-lr, u, p)
 * </pre>
 * States: {@link StateKind#SQUARE_AVG}; {@link StateKind#GRAD_AVG} when centered;
 * {@link StateKind#MOMENTUM_BUFFER} when momentum > 0; all start at zero (ND4J starts s at eps;
 * we follow PyTorch). Defaults follow PyTorch: lr = 1e-2, alpha = 0.99, eps = 1e-8. alpha must lie in
 * [0, 1) (PyTorch accepts any alpha >= 0, but alpha >= 1 never updates or diverges). As in PyTorch,
 * rounding can make {@code s - a^2} slightly negative for a centered variant whose gradient is
 * nearly constant; the square root then yields NaN, which the update propagates.
 */
public record RmsProp(double learningRate, double alpha, double epsilon, double weightDecay, double momentum,
                      boolean centered, boolean maximize) implements OptimizerConfig {

    public RmsProp {
        Check.learningRate(learningRate);
        Check.unitInterval("alpha", alpha, false);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
        Check.unitInterval("momentum", momentum, false);
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optAlpha(alpha).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optMomentum(momentum).optCentered(centered).optMaximize(maximize);
    }

    @Override
    public RmsProp withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "rmsprop";
    }

    /** Whether this variant keeps a momentum buffer (momentum > 0 after rounding to float32). */
    public boolean usesMomentum() {
        return (float) momentum != 0f;
    }

    @Override
    public List<StateKind> stateKinds() {
        List<StateKind> kinds = new ArrayList<>(List.of(StateKind.SQUARE_AVG));
        if (centered) kinds.add(StateKind.GRAD_AVG);
        if (usesMomentum()) kinds.add(StateKind.MOMENTUM_BUFFER);
        return List.copyOf(kinds);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-2;
        private double alpha = 0.99;
        private double epsilon = 1e-8;
        private double weightDecay;
        private double momentum;
        private boolean centered;
        private boolean maximize;

        public Builder optLearningRate(double v) { learningRate = v; return this; }
        public Builder optAlpha(double v) { alpha = v; return this; }
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        public Builder optMomentum(double v) { momentum = v; return this; }
        public Builder optCentered(boolean v) { centered = v; return this; }
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        public RmsProp build() {
            return new RmsProp(learningRate, alpha, epsilon, weightDecay, momentum, centered, maximize);
        }
    }
}
