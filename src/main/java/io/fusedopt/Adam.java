package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Adam and its variants: the paper form and the step-size form, AMSGrad, L2 weight decay (Adam) and
 * decoupled weight decay (AdamW), maximize.
 *
 * <p>With t the step counter (starting at 1), bc1 = 1 - beta1^t and bc2 = 1 - beta2^t are computed
 * fresh each step in double on the host and folded into two scalars; they are never stored back
 * into m or v:
 * <pre>
 *   paper form:      stepSize = lr / bc1,               invSqrtBc2 = 1 / sqrt(bc2)
 *   step-size form:  stepSize = lr * sqrt(bc2) / bc1,   invSqrtBc2 = 1
 *
 *   decoupled:  p = p * (1 - lr*weightDecay)            (AdamW; the factor computed on the host)
 *   g' = maximize ? -g : g
 *   L2:         g' = fma(weightDecay, p, g')
 *   m  = fma(beta1, m, (1 - beta1) * g')
 *   v  = fma(beta2, v, (1 - beta2) * (g' * g'))
 *   AMSGrad:    vmax = max(vmax, v) (NaN propagates), and vmax replaces v below
 *   denom = fma(sqrt(v), invSqrtBc2, eps)               paper: sqrt(v_hat) + eps, eps outside the root
 *   p  = fma(-stepSize, m / denom, p)
 * </pre>
 * The paper form is Kingma and Ba's Algorithm 1 as PyTorch implements it. The step-size form
 * ("epsilon hat", as in TensorFlow and ND4J) differs from it only through where eps acts: its eps is
 * effectively eps * sqrt(bc2) of the paper form, so it matters for gradients near eps, early in
 * training. Defaults follow PyTorch: lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, no weight decay;
 * {@link #adamW()} gives AdamW with PyTorch's weightDecay = 1e-2. 1 - beta is computed from the
 * float32 beta, so m and v are exactly the averages the bias corrections assume.
 */
public record Adam(double learningRate, double beta1, double beta2, double epsilon, double weightDecay,
                   WeightDecay weightDecayMode, Form form, boolean amsgrad, boolean maximize)
        implements OptimizerConfig {

    /** How weightDecay enters the update. */
    public enum WeightDecay {
        /** Added to the gradient: g' = g + weightDecay*p (torch.optim.Adam's weight_decay). */
        L2,
        /** Applied to the parameter: p = p*(1 - lr*weightDecay) (AdamW, torch.optim.AdamW). */
        DECOUPLED
    }

    /** Where the bias corrections act; the two differ only through eps. */
    public enum Form { PAPER, STEP_SIZE }

    public Adam {
        Check.learningRate(learningRate);
        Check.unitInterval("beta1", beta1, false);
        Check.unitInterval("beta2", beta2, false);
        Check.positive("epsilon", epsilon);
        Check.nonNegative("weightDecay", weightDecay);
        Check.notNull("weightDecayMode", weightDecayMode);
        Check.notNull("form", form);
    }

    /** Adam with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** AdamW: decoupled weight decay with PyTorch's default weightDecay = 1e-2. */
    public static Builder adamW() {
        return new Builder().optWeightDecay(1e-2).optWeightDecayMode(WeightDecay.DECOUPLED);
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBetas(beta1, beta2).optEpsilon(epsilon)
                .optWeightDecay(weightDecay).optWeightDecayMode(weightDecayMode).optForm(form)
                .optAmsgrad(amsgrad).optMaximize(maximize);
    }

    @Override
    public Adam withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "adam";
    }

    @Override
    public List<StateKind> stateKinds() {
        return amsgrad
                ? List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ, StateKind.MAX_EXP_AVG_SQ)
                : List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private double beta1 = 0.9;
        private double beta2 = 0.999;
        private double epsilon = 1e-8;
        private double weightDecay;
        private WeightDecay weightDecayMode = WeightDecay.L2;
        private Form form = Form.PAPER;
        private boolean amsgrad;
        private boolean maximize;

        public Builder optLearningRate(double v) { learningRate = v; return this; }
        public Builder optBetas(double b1, double b2) { beta1 = b1; beta2 = b2; return this; }
        public Builder optEpsilon(double v) { epsilon = v; return this; }
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        public Builder optWeightDecayMode(WeightDecay v) { weightDecayMode = v; return this; }
        public Builder optForm(Form v) { form = v; return this; }
        public Builder optAmsgrad(boolean v) { amsgrad = v; return this; }
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        public Adam build() {
            return new Adam(learningRate, beta1, beta2, epsilon, weightDecay, weightDecayMode, form, amsgrad, maximize);
        }
    }
}
