package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * NAdam, Adam with Nesterov momentum (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), as
 * PyTorch's {@code torch.optim.NAdam} computes it: its single-tensor update of torch 2.x
 * ({@code _single_tensor_nadam} in {@code torch/optim/nadam.py}, with {@code momentum_decay},
 * {@code decoupled_weight_decay} and {@code maximize}). torch 1.13's single-tensor loop counts mu_t
 * twice in mu_product_next; its foreach loop and torch 2.0 on compute what is written here.
 *
 * <p>With t the tensor's own step (starting at 1) and psi = momentumDecay, the host computes in
 * double each step, from the float32 hyper-parameters, then rounds each scalar once to float32:
 * <pre>
 *   q      = 0.96^psi                                    (StepScalars.pow: the same bits on the device)
 *   mu_i   = beta1 * (1 - 0.5 * q^i)                     (PyTorch: beta1 * (1 - 0.5 * 0.96^(i*psi)))
 *   mu     = mu_t,   muNext = mu_{t+1}                   (q^t by binary exponentiation, q^(t+1) = q^t * q)
 *   muProduct     = mu_1 * mu_2 * ... * mu_t             (q^i by repeated multiplication, in order)
 *   muProductNext = muProduct * muNext
 *   gradCoef      = lr * (1 - mu) / (1 - muProduct)
 *   momentumCoef  = lr * muNext / (1 - muProductNext)
 *   bc2           = 1 - beta2^t
 * </pre>
 * Then per element, in float32, in this order:
 * <pre>
 *   decoupled:  p = p * (1 - lr*weightDecay)            (the factor computed on the host)
 *   g' = maximize ? -g : g
 *   L2:         g' = fma(weightDecay, p, g')
 *   m  = fma(beta1, m, (1 - beta1) * g')
 *   v  = fma(beta2, v, (1 - beta2) * (g' * g'))
 *   denom = sqrt(v / bc2) + eps                          (PyTorch's order: eps outside the root)
 *   p  = fma(-gradCoef, g' / denom, p)
 *   p  = fma(-momentumCoef, m / denom, p)
 * </pre>
 * The moment updates are written as {@link Adam}'s (one FMA each, 1 - beta from the float32 beta);
 * PyTorch computes m with {@code lerp_} and v with {@code mul_} then {@code addcmul_}, so a trajectory
 * agrees with PyTorch's within rounding, not bit for bit.
 *
 * <p>The running product mu_1 ... mu_t, a state scalar in PyTorch (a float32 tensor rounded every
 * step), is no state here: it is recomputed every step from t alone, in double, on the host and on
 * the device with the same operations. So a tensor's own step is all its scalars depend on, which
 * makes resuming from a checkpoint exact and per-tensor step counts free. The product is
 * accumulated until it falls below 2^-60; from there on it counts as exactly 0, which changes no
 * bit of any scalar (see {@code NAdamAlgorithm.muProduct}). Since every mu_i lies in
 * [beta1/2, beta1), that takes at most min(t, about 41.6 / (1 - beta1)) factors, and with the
 * default psi (for which mu_i stays close to beta1/2 for thousands of steps) about 60 for any
 * beta1. The worst case is beta1 close to 1 with a huge psi (mu_i close to beta1 from the start):
 * beta1 = 0.999 and psi = 1e6 take 41,569 factors per step, the largest float32 beta1 below 1
 * about 7e8, paid once per group and step on the host and by every device thread for each chunk
 * it updates.
 *
 * <p>State: {@link StateKind#EXP_AVG}, {@link StateKind#EXP_AVG_SQ}. Defaults follow PyTorch:
 * lr = 2e-3, betas = (0.9, 0.999), eps = 1e-8, weightDecay = 0 (L2), momentumDecay = 4e-3, no
 * maximize. Unlike PyTorch, eps must be &gt; 0 (as for {@link Adam}): with eps = 0 a zero v gives
 * 0 / 0.
 *
 * @param learningRate         lr, &gt;= 0
 * @param beta1                the first moment's decay, in [0, 1)
 * @param beta2                the second moment's decay, in [0, 1)
 * @param epsilon              eps, added to sqrt(v / bc2), &gt; 0
 * @param weightDecay          the weight decay coefficient, &gt;= 0
 * @param momentumDecay        PyTorch's {@code momentum_decay} psi, &gt;= 0
 * @param decoupledWeightDecay PyTorch's {@code decoupled_weight_decay}: the decay multiplies the
 *                             parameter (NAdamW) instead of entering the gradient (L2)
 * @param maximize             maximizes the objective instead of minimizing it
 */
public record NAdam(double learningRate, double beta1, double beta2, double epsilon, double weightDecay,
                    double momentumDecay, boolean decoupledWeightDecay, boolean maximize) implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use. */
    public NAdam {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
        Check.nonNegative("momentumDecay", momentumDecay);
    }

    /** NAdam with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optMomentumDecay(momentumDecay)
                .optDecoupledWeightDecay(decoupledWeightDecay).optMaximize(maximize);
    }

    @Override
    public NAdam withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "nadam";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 2e-3;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double epsilon = 1e-8;
        private double weightDecay;
        private double momentumDecay = 4e-3;
        private boolean decoupledWeightDecay;
        private boolean maximize;

        /** The learning rate lr (default 2e-3). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** PyTorch's betas (default (0.9, 0.999)). */
        public Builder optBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        /** eps (default 1e-8). */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        /** The weight decay coefficient (default 0). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** PyTorch's {@code momentum_decay} psi (default 4e-3). */
        public Builder optMomentumDecay(double v) { momentumDecay = v; return this; }
        /** PyTorch's {@code decoupled_weight_decay} (default false: L2). */
        public Builder optDecoupledWeightDecay(boolean v) { decoupledWeightDecay = v; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public NAdam build() {
            return new NAdam(learningRate, beta1, beta2, epsilon, weightDecay, momentumDecay, decoupledWeightDecay,
                    maximize);
        }
    }
}
