package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Lion, EvoLved Sign Momentum (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"),
 * as its authors' PyTorch implementation defines it: google/automl, {@code lion/lion_pytorch.py}.
 * PyTorch itself has no Lion.
 *
 * <p>Per element, in float32, in this order (the cited file's order; the factor 1 - lr*weightDecay
 * and 1 - beta computed on the host in double from the float32 values, rounded once):
 * <pre>
 *   decoupled:  p = p * (1 - lr*weightDecay)            (when weightDecay != 0)
 *   g' = maximize ? -g : g
 *   c  = fma(beta1, m, (1 - beta1) * g')
 *   p  = fma(-lr, sign(c), p)                            exact product: p - lr*sign(c), one rounding
 *   m  = fma(beta2, m, (1 - beta2) * g')
 * </pre>
 * sign(x) is 1 for x &gt; 0, -1 for x &lt; 0, +0 for either zero (so an element whose c is 0 keeps its
 * parameter bit for bit) and NaN for NaN (a NaN gradient or state makes the parameter NaN). The
 * interpolations are written as {@link Adam}'s first moment (one FMA); the cited file rounds
 * {@code beta1*m} and {@code (1-beta1)*g} separately before adding them, which can change sign(c)
 * only where c is within a rounding of 0. {@code maximize} is ours (the cited file has none): the
 * gradient is negated first, as in PyTorch's optimizers.
 *
 * <p>State: {@link StateKind#EXP_AVG}. Defaults follow the cited file: lr = 1e-4,
 * betas = (0.9, 0.99), weightDecay = 0. Its authors suggest an lr 3-10x smaller and a weight decay
 * 3-10x larger than AdamW's, since every coordinate of the update has magnitude lr.
 *
 * @param learningRate lr, &gt;= 0
 * @param beta1        the interpolation that gives the update's sign, in [0, 1)
 * @param beta2        the momentum's decay, in [0, 1)
 * @param weightDecay  the decoupled weight decay coefficient, &gt;= 0
 * @param maximize     maximizes the objective instead of minimizing it
 */
public record Lion(double learningRate, double beta1, double beta2, double weightDecay, boolean maximize)
        implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use. */
    public Lion {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.nonNegative("weightDecay", weightDecay);
    }

    /** Lion with the defaults of the cited implementation. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2).optWeightDecay(weightDecay)
                .optMaximize(maximize);
    }

    @Override
    public Lion withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "lion";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.EXP_AVG);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-4;
        private double beta1 = 0.9;
        private double beta2 = 0.99;
        private double weightDecay;
        private boolean maximize;

        /** The learning rate lr (default 1e-4). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** The betas (default (0.9, 0.99)). */
        public Builder optBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        /** The decoupled weight decay coefficient (default 0). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public Lion build() {
            return new Lion(learningRate, beta1, beta2, weightDecay, maximize);
        }
    }
}
