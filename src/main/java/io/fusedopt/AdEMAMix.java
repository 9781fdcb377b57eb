package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * AdEMAMix (Pagliardini et al. 2024, "The AdEMAMix Optimizer: Better, Faster, Older"): Adam whose
 * numerator mixes a fast EMA of the gradients with a slow one, as bitsandbytes defines it:
 * bitsandbytes-foundation/bitsandbytes {@code bitsandbytes/optim/ademamix.py}
 * ({@code _ReferenceAdEMAMix.step}; {@code AdEMAMix.update_step} for the warm-ups) and
 * {@code csrc/kernels.cu} ({@code kOptimizer32bit2State}, case {@code ADEMAMIX}). PyTorch itself
 * has no AdEMAMix.
 *
 * <p>With t the step counter (starting at 1), the host computes in double each step, from the
 * float32 hyper-parameters (integer powers by binary exponentiation, log and exp by
 * {@code StepScalars.log/exp}, the same IEEE operations as the kernels' {@code fo_log/fo_exp}):
 * <pre>
 *   bc1 = 1 - beta1^t,  bc2 = 1 - beta2^t
 *   alpha_t = alphaWarmup != 0 ? min(t*alpha / alphaWarmup, alpha) : alpha
 *   s       = t / beta3Warmup
 *   beta3_t = beta3Warmup != 0
 *             ? min(exp(log(beta1)*log(beta3) / ((1 - s)*log(beta3) + s*log(beta1))), beta3) : beta3
 * </pre>
 * and rounds 1/bc1, 1/sqrt(bc2), alpha_t, beta3_t and 1 - beta3_t (from the double beta3_t) once
 * each to float32. Then per element, in float32, in this order:
 * <pre>
 *   g' = maximize ? -g : g
 *   m1 = fma(beta1, m1, (1 - beta1) * g')
 *   m2 = fma(beta3_t, m2, (1 - beta3_t) * g')
 *   nu = fma(beta2, nu, (1 - beta2) * (g' * g'))
 *   d  = fma(sqrt(nu), 1/sqrt(bc2), eps)
 *   u  = fma(alpha_t, m2, m1 * (1/bc1)) / d
 *   u  = fma(weightDecay, p, u)                          (when weightDecay != 0; p before this step)
 *   p  = fma(-lr, u, p)
 * </pre>
 * that is p = p - lr*(u + weightDecay*p): decoupled weight decay from the parameter before the
 * step, as bitsandbytes' Python reference and the paper's algorithm (AdamW's order). Its CUDA kernel
 * decays after the update instead, {@code p = (p - lr*u) * (1 - lr*weightDecay)}, which differs by
 * lr^2*weightDecay*u; not followed. bitsandbytes' Python reference overwrites alpha and beta3 with
 * their scheduled values inside its loop over a group's tensors, so that from a group's second
 * tensor on the warm-ups compound; here (as in {@code update_step}) every tensor's schedule is
 * computed from the configured values and its own step. The moment updates are written as
 * {@link Adam}'s (one FMA each, 1 - beta from the float32 beta); the cited sources round
 * {@code beta*m} and {@code (1-beta)*g} separately. {@code maximize} is ours (the cited sources have
 * none): the gradient is negated first, as in PyTorch's optimizers.
 *
 * <p>The beta3 warm-up (the paper's scheduler) raises beta3_t from beta1 at t = 0 to beta3 at
 * t = beta3Warmup, after which it stays beta3; it needs 0 &lt; beta1 &lt;= beta3 (log(beta1) must be
 * finite, and with beta1 &gt; beta3 the cited formula's denominator crosses 0 after the warm-up).
 * The alpha warm-up raises alpha_t linearly from alpha/alphaWarmup to alpha. A warm-up of 0 is
 * off, as the cited sources treat a {@code t_alpha} or {@code t_beta3} of None or 0.
 *
 * <p>State: {@link StateKind#M1}, {@link StateKind#M2}, {@link StateKind#NU} (bitsandbytes' names;
 * it stacks m1 and m2 in one tensor). Defaults follow bitsandbytes: lr = 1e-3,
 * betas = (0.9, 0.999, 0.9999), alpha = 5, eps = 1e-8, weightDecay = 1e-2, no warm-ups. eps must be
 * &gt; 0 (as for {@link Adam}): with eps = 0 a zero nu gives 0/0.
 *
 * @param learningRate lr, &gt;= 0
 * @param beta1        the fast EMA's decay, in [0, 1)
 * @param beta2        the second moment's decay, in [0, 1)
 * @param beta3        the slow EMA's decay (after its warm-up), in [0, 1)
 * @param alpha        the slow EMA's weight in the numerator (after its warm-up), &gt;= 0
 * @param epsilon      eps, added to sqrt(nu/bc2), &gt; 0
 * @param weightDecay  the decoupled weight decay coefficient, &gt;= 0
 * @param alphaWarmup  bitsandbytes' {@code t_alpha}: the steps over which alpha_t rises to alpha;
 *                     0 (no warm-up) or &gt;= 1
 * @param beta3Warmup  bitsandbytes' {@code t_beta3}: the steps over which beta3_t rises from beta1 to
 *                     beta3; 0 (no warm-up) or &gt;= 1
 * @param maximize     maximizes the objective instead of minimizing it
 */
public record AdEMAMix(double learningRate, double beta1, double beta2, double beta3, double alpha, double epsilon,
                       double weightDecay, double alphaWarmup, double beta3Warmup, boolean maximize)
        implements OptimizerConfig {

    /** Validates every value as the float32 the kernels use. */
    public AdEMAMix {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.unitInterval("beta3", beta3, false);
        Check.nonNegative("alpha", alpha);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
        checkWarmup("alphaWarmup", alphaWarmup);
        checkWarmup("beta3Warmup", beta3Warmup);
        if ((float) beta3Warmup != 0f && !((float) beta1 > 0f && (float) beta1 <= (float) beta3)) {
            throw new IllegalArgumentException("beta1 must be in (0, beta3] in float32 with a beta3 warm-up (beta3Warmup "
                    + beta3Warmup + ": beta3_t rises from beta1 to beta3 through log(beta1)), got beta1 = " + beta1
                    + " and beta3 = " + beta3);
        }
    }

    /** 0 (off) or a finite float32 &gt;= 1. */
    private static void checkWarmup(String name, double steps) {
        Check.nonNegative(name, steps);
        if ((float) steps != 0f && (float) steps < 1f) {
            throw new IllegalArgumentException(name + " must be 0 (no warm-up) or >= 1 step, got " + steps);
        }
    }

    /** AdEMAMix with bitsandbytes' defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2, beta3).optAlpha(alpha)
                .optEpsilon(epsilon).optWeightDecay(weightDecay).optAlphaWarmup(alphaWarmup)
                .optBeta3Warmup(beta3Warmup).optMaximize(maximize);
    }

    @Override
    public AdEMAMix withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "ademamix";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.M1, StateKind.M2, StateKind.NU);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double beta3 = 0.9999;
        private double alpha = 5;
        private double epsilon = 1e-8;
        private double weightDecay = 1e-2;
        private double alphaWarmup;
        private double beta3Warmup;
        private boolean maximize;

        /** The learning rate lr (default 1e-3). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** The decays of the fast EMA, the second moment and the slow EMA (default (0.9, 0.999, 0.9999)). */
        public Builder optBetas(double b1, double b2, double b3) { beta1 = b1; beta2 = b2; beta3 = b3; return this; }
        /** The slow EMA's weight alpha (default 5). */
        public Builder optAlpha(double v) { alpha = v; return this; }
        /** eps, added to the denominator (default 1e-8). */
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        /** The decoupled weight decay coefficient (default 1e-2, bitsandbytes'). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** bitsandbytes' {@code t_alpha}: alpha's warm-up in steps, &gt;= 1 (default 0: none). */
        public Builder optAlphaWarmup(double steps) { alphaWarmup = steps; return this; }
        /** bitsandbytes' {@code t_beta3}: beta3's warm-up in steps, &gt;= 1 (default 0: none). */
        public Builder optBeta3Warmup(double steps) { beta3Warmup = steps; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public AdEMAMix build() {
            return new AdEMAMix(learningRate, beta1, beta2, beta3, alpha, epsilon, weightDecay, alphaWarmup,
                    beta3Warmup, maximize);
        }
    }
}
