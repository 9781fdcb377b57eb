package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * RAdam, rectified Adam (Liu et al. 2019, "On the Variance of the Adaptive Learning Rate and
 * Beyond"), as PyTorch's {@code torch.optim.RAdam} computes it (its single-tensor update, with
 * {@code decoupled_weight_decay} and {@code maximize} of PyTorch 2.x).
 *
 * <p>With t the step counter (starting at 1), the host computes in double each step, from the
 * float32 betas, with integer powers by binary exponentiation:
 * <pre>
 *   bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t
 *   rhoInf = 2/(1 - beta2) - 1
 *   rhoT   = rhoInf - 2*t*beta2^t / bc2
 *   rectified = rhoT &gt; 5
 *   rect   = sqrt((rhoT-4)*(rhoT-2)*rhoInf / ((rhoInf-4)*(rhoInf-2)*rhoT))     (when rectified)
 * </pre>
 * and rounds bc1, sqrt(bc2) and rect once each to float32. Then per element, in float32, in this
 * order (PyTorch's order from {@code m / bc1} on: {@code m_hat * lr * adaptive_lr * rect}, where
 * PyTorch's {@code sqrt(bc2) / (sqrt(v) + eps)} is {@code reciprocal(sqrt(v) + eps) * sqrt(bc2)}):
 * <pre>
 *   decoupled:  p = p * (1 - lr*weightDecay)            (the factor computed on the host)
 *   g' = maximize ? -g : g
 *   L2:         g' = fma(weightDecay, p, g')
 *   m  = fma(beta1, m, (1 - beta1) * g')
 *   v  = fma(beta2, v, (1 - beta2) * (g' * g'))
 *   u  = (m / bc1) * lr
 *   rectified:  u = (u * ((1 / (sqrt(v) + eps)) * sqrt(bc2))) * rect
 *   p  = p - u
 * </pre>
 * The moment updates are written as {@link Adam}'s (one FMA each, 1 - beta from the float32 beta);
 * PyTorch rounds them differently ({@code mul_} then {@code add_}, or {@code lerp_} in 2.x), so a
 * trajectory agrees with PyTorch's within rounding, not bit for bit. Which branch a step takes
 * depends only on t and beta2, so every element of a tensor takes the same branch. Without
 * rectification (the first steps, and always when rhoInf &lt;= 5, that is beta2 &lt;= 2/3) the
 * update is SGD with momentum on the bias-corrected average, and v is still updated.
 *
 * <p>State: {@link StateKind#EXP_AVG}, {@link StateKind#EXP_AVG_SQ}. Defaults follow PyTorch:
 * lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, weightDecay = 0 (L2), no maximize. Unlike PyTorch,
 * eps must be &gt; 0 (as for {@link Adam}): with eps = 0 a zero v gives 0 * infinity.
 *
 * @param learningRate         lr, &gt;= 0
 * @param beta1                the first moment's decay, in [0, 1)
 * @param beta2                the second moment's decay, in [0, 1)
 * @param epsilon              eps, added to sqrt(v), &gt; 0
 * @param weightDecay          the weight decay coefficient, &gt;= 0
 * @param decoupledWeightDecay PyTorch's {@code decoupled_weight_decay}: the decay multiplies the
 *                             parameter (RAdamW) instead of entering the gradient (L2)
 * @param maximize             maximizes the objective instead of minimizing it
 */
public record RAdam(double learningRate, double beta1, double beta2, double epsilon, double weightDecay,
                    boolean decoupledWeightDecay, boolean maximize) implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use. */
    public RAdam {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
    }

    /** RAdam with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optDecoupledWeightDecay(decoupledWeightDecay).optMaximize(maximize);
    }

    @Override
    public RAdam withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "radam";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double epsilon = 1e-8;
        private double weightDecay;
        private boolean decoupledWeightDecay;
        private boolean maximize;

        /** The learning rate lr (default 1e-3). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** PyTorch's betas (default (0.9, 0.999)). */
        public Builder optBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        /** eps (default 1e-8). */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        /** The weight decay coefficient (default 0). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** PyTorch's {@code decoupled_weight_decay} (default false: L2). */
        public Builder optDecoupledWeightDecay(boolean v) { decoupledWeightDecay = v; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public RAdam build() {
            return new RAdam(learningRate, beta1, beta2, epsilon, weightDecay, decoupledWeightDecay, maximize);
        }
    }
}
