package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * LAMB, layer-wise adaptive moments (You et al. 2019, "Large Batch Optimization for Deep Learning:
 * Training BERT in 76 minutes"), as NVIDIA Apex's {@code FusedLAMB} defines it:
 * {@code apex/optimizers/fused_lamb.py} and {@code csrc/multi_tensor_lamb.cu}
 * ({@code LAMBStage1Functor}, {@code LAMBStage2Functor}). PyTorch itself has no LAMB.
 *
 * <p>Per element of a tensor, in float32, in this order, with t the tensor's step (from 1),
 * invBc1 = 1 / (1 - beta1^t) and invSqrtBc2 = 1 / sqrt(1 - beta2^t) computed on the host in double
 * and rounded once (both 1 without bias correction):
 * <pre>
 *   g' = maximize ? -g : g
 *   L2:         g' = fma(weightDecay, p, g')
 *   m  = fma(beta1, m, (1 - beta1) * g')
 *   v  = fma(beta2, v, (1 - beta2) * (g' * g'))
 *   u  = (m * invBc1) / fma(sqrt(v), invSqrtBc2, eps)
 *   decoupled:  u = fma(weightDecay, p, u)
 *   p  = fma(-ratio, u, p)
 * </pre>
 * and per tensor, from the norms of the parameter before the step and of its update u over the
 * whole tensor (each sum of squares in double in a fixed order, the square roots and the ratio in
 * double, rounded once):
 * <pre>
 *   ratio = lr * ||p|| / ||u||     where both norms are non-zero and the trust ratio applies
 *   ratio = lr                     otherwise
 * </pre>
 * The trust ratio applies where weightDecay is not 0 or {@code trustRatioWithoutWeightDecay} is
 * set (Apex's {@code use_nvlamb}); a group with weight decay 0 (biases and norms, usually) takes
 * plain Adam steps otherwise. Each step runs a norm pass over the group's tensors first
 * (computing u, writing nothing), then the update, which computes u again, bit for bit.
 *
 * <p>Gradient clipping: Apex's {@code max_grad_norm} divides the gradient by
 * globalNorm / maxGradNorm where it exceeds 1. Here clipping is the optimizer's
 * ({@code DeviceOptimizer.Builder.optMaxGradNorm}, PyTorch's {@code clip_grad_norm_} rule, applied
 * before LAMB sees the gradient); Apex's grad_averaging is always on (m's input is (1 - beta1) * g).
 *
 * <p>State: {@link StateKind#EXP_AVG}, {@link StateKind#EXP_AVG_SQ}. Defaults follow Apex:
 * lr = 1e-3, betas = (0.9, 0.999), eps = 1e-6, weightDecay = 0.01, decoupled, bias correction on.
 *
 * @param learningRate                 lr, &gt;= 0
 * @param beta1                        the first moment's decay, in [0, 1)
 * @param beta2                        the second moment's decay, in [0, 1)
 * @param epsilon                      eps, &gt; 0
 * @param weightDecay                  the weight decay coefficient, &gt;= 0
 * @param weightDecayMode              how it enters: added to the update or to the gradient
 * @param biasCorrection               whether the moments are bias-corrected
 * @param trustRatioWithoutWeightDecay whether the trust ratio applies with weight decay 0 too (NVLAMB)
 * @param maximize                     maximizes the objective instead of minimizing it
 */
public record Lamb(double learningRate, double beta1, double beta2, double epsilon, double weightDecay,
                   WeightDecay weightDecayMode, boolean biasCorrection, boolean trustRatioWithoutWeightDecay,
                   boolean maximize) implements OptimizerConfig {

    /** How weightDecay enters the update. */
    public enum WeightDecay {
        /** Added to the gradient before the moments: g' = g + weightDecay*p (Apex's adam_w_mode=False). */
        L2,
        /** Added to the update: u = u + weightDecay*p, scaled by the trust ratio with it (Apex's default). */
        DECOUPLED
    }

    /** Validates every value as the float32 the kernels use. */
    public Lamb {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
        Check.notNull("weightDecayMode", weightDecayMode);
    }

    /** LAMB with Apex's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optWeightDecayMode(weightDecayMode).optBiasCorrection(biasCorrection)
                .optTrustRatioWithoutWeightDecay(trustRatioWithoutWeightDecay).optMaximize(maximize);
    }

    @Override
    public Lamb withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "lamb";
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
        private double epsilon = 1e-6;
        private double weightDecay = 0.01;
        private WeightDecay weightDecayMode = WeightDecay.DECOUPLED;
        private boolean biasCorrection = true;
        private boolean trustRatioWithoutWeightDecay;
        private boolean maximize;

        /** The learning rate lr (default 1e-3). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** The betas (default (0.9, 0.999)). */
        public Builder optBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        /** eps (default 1e-6). */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        /** The weight decay coefficient (default 0.01). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** How the weight decay enters (default {@link WeightDecay#DECOUPLED}). */
        public Builder optWeightDecayMode(WeightDecay v) { weightDecayMode = v; return this; }
        /** Whether the moments are bias-corrected (default true). */
        public Builder optBiasCorrection(boolean v) { biasCorrection = v; return this; }
        /** Whether the trust ratio applies with weight decay 0 too, Apex's use_nvlamb (default false). */
        public Builder optTrustRatioWithoutWeightDecay(boolean v) { trustRatioWithoutWeightDecay = v; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public Lamb build() {
            return new Lamb(learningRate, beta1, beta2, epsilon, weightDecay, weightDecayMode, biasCorrection,
                    trustRatioWithoutWeightDecay, maximize);
        }
    }
}
