package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Adadelta (Zeiler 2012) as PyTorch's {@code torch.optim.Adadelta} computes it
 * ({@code _single_tensor_adadelta} in {@code torch/optim/adadelta.py}, 1.13), with PyTorch's
 * learning rate scaling the step.
 *
 * <p>In this order, each line one float32 rounding per operation and {@code fma} one rounding in all:
 * <pre>
 *   g'    = maximize ? -g : g;  g' = fma(weightDecay, p, g') when weightDecay != 0
 *   s     = fma(rho, s, (1 - rho) * (g' * g'))
 *   std   = sqrt(s + eps)
 *   delta = (sqrt(a + eps) / std) * g'          PyTorch: acc_delta.add(eps).sqrt_().div_(std).mul_(grad)
 *   a     = fma(rho, a, (1 - rho) * (delta * delta))
 *   p     = fma(-lr, delta, p)
 * </pre>
 * s is {@link StateKind#SQUARE_AVG}, a is {@link StateKind#ACC_DELTA}; both start at 0. delta uses
 * a from before this step's update, as in PyTorch. 1 - rho is computed from the float32 rho.
 * Defaults follow PyTorch: lr = 1.0, rho = 0.9, eps = 1e-6, weightDecay = 0 (L2: added to the
 * gradient); rho may be 0 or 1 as in PyTorch. Unlike PyTorch, eps must be &gt; 0: with eps = 0 the
 * first step is 0/0.
 */
public record Adadelta(double learningRate, double rho, double epsilon, double weightDecay, boolean maximize)
        implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use, naming the one refused. */
    public Adadelta {
        Check.learningRate(learningRate);
        Check.unitInterval("rho", rho, true);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
    }

    /** Adadelta with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optRho(rho).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optMaximize(maximize);
    }

    @Override
    public Adadelta withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "adadelta";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.SQUARE_AVG, StateKind.ACC_DELTA);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1.0;
        private double rho = 0.9;
        private double epsilon = 1e-6;
        private double weightDecay;
        private boolean maximize;

        @Override
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** rho, the decay of both running averages, in [0, 1]. */
        public Builder optRho(double v) { rho = v; return this; }
        /** eps, added inside both square roots. */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        @Override
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        @Override
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        @Override
        public Adadelta build() {
            return new Adadelta(learningRate, rho, epsilon, weightDecay, maximize);
        }
    }
}
