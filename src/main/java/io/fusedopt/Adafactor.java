package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Adafactor (Shazeer and Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
 * Cost") with the semantics of {@code torch.optim.Adafactor}: PyTorch's
 * {@code torch/optim/_adafactor.py}, {@code _single_tensor_adafactor} (read at pytorch/pytorch
 * 051d6a09bb159a48ac11006c454c0c979511d0f3; where that file's docstring and its code differ, this
 * follows the code).
 *
 * <p>Per tensor and step, with {@code t} the tensor's own step counter and {@code G} the gradient
 * ({@code -g} when maximizing):
 * <pre>
 *   w     = t^beta2Decay                    (the interpolation weight; 1 at t = 1)
 *   rho   = min(lr, 1/sqrt(t))
 *   alpha = max(eps2, RMS(p)) * rho         (RMS of p before this step's decay)
 *   p     = p * (1 - lr*weightDecay)
 *   rank &gt;= 2, per matrix of the last two dimensions (R x C):
 *     r_i = lerp(r_i, mean_j G_ij^2, w),  c_j = lerp(c_j, mean_i G_ij^2, w)
 *     V_ij = r_i * c_j / max(mean_i r_i, eps1)
 *   rank 1:  v = lerp(v, G*G, w),  V = v
 *   U     = G / sqrt(max(V, eps1^2))
 *   p     = p - alpha / max(1, RMS(U)/d) * U
 * </pre>
 * There is no first moment. The factored second moment keeps R + C values per matrix instead of
 * R * C: register a tensor with its shape ({@link ParamGroup#add(String, TensorBuffer, TensorBuffer,
 * long...)}); one registered without one is a vector.
 *
 * <p>In float32, on every backend bit for bit: w, 1 - w, rho, 1 - lr*weightDecay and eps1^2 are
 * computed in double from the float32 hyper-parameters and t, each rounded once; a row's or
 * column's mean of G^2 is its sum in double divided in double, rounded once; each factor is stored
 * (rounded to the state format) before it is read; V = (r_i * c_j) / mean, U = G / sqrt(max(V,
 * eps1^2)) (IEEE square root and division where PyTorch multiplies by rsqrt); alpha and the
 * clipping denominator are computed in double from the sums of squares of p and U, and
 * p = fma(-alpha/denominator, U, p * (1 - lr*weightDecay)) with -alpha/denominator rounded once.
 * Every sum is taken in double in a fixed order (docs/algorithms.md, "Adafactor"); a maximum
 * propagates NaN, as PyTorch's clamp does. lerp(a, b, w) is PyTorch's: fma(w, b - a, a) for
 * |w| &lt; 0.5, else fma(-(b - a), 1 - w, b), so that the first step (w = 1) sets the states to
 * the squares exactly.
 *
 * <p>State: {@link StateKind#VARIANCE} for a vector, {@link StateKind#ROW_VAR} ([..., R, 1]) and
 * {@link StateKind#COL_VAR} ([..., 1, C]) for a tensor of rank &gt;= 2, PyTorch's names and
 * shapes, which checkpoints record and a load checks. Adafactor has no 8-bit states: an optimizer
 * with {@link StateQuantization#BLOCKWISE_8BIT} refuses an Adafactor group.
 *
 * @param learningRate lr, &gt;= 0: the cap of the relative step size rho and the weight decay's factor
 * @param beta2Decay   the exponent of t in the interpolation weight, &lt;= 0
 * @param eps1         the floor of the second-moment estimate's square root (and of the row factors'
 *                     mean), &gt;= 0; PyTorch's {@code None} is the float32 epsilon
 *                     {@link #FLOAT32_EPSILON}, the dtype fusedopt's updates run in
 * @param eps2         the floor of RMS(p) in the step size, &gt;= 0
 * @param d            the update clipping threshold, &gt;= 1
 * @param weightDecay  the decoupled weight decay coefficient (multiplied by lr), &gt;= 0
 * @param maximize     maximizes the objective instead of minimizing it
 */
public record Adafactor(double learningRate, double beta2Decay, double eps1, double eps2, double d, double weightDecay,
                        boolean maximize) implements OptimizerConfig {

    /** {@code torch.finfo(torch.float32).eps}, 2^-23: eps1 when PyTorch's is {@code None}. */
    public static final double FLOAT32_EPSILON = 0x1p-23;

    /** Validates every value as the float32 the kernels use, with PyTorch's domains. */
    public Adafactor {
        Check.learningRate(learningRate);
        Check.atMost("beta2Decay", beta2Decay, 0);
        Check.nonNegative("eps1", eps1);
        Check.nonNegative("eps2", eps2);
        Check.atLeast("d", d, 1);
        Check.nonNegative("weightDecay", weightDecay);
    }

    /** Adafactor with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optBeta2Decay(beta2Decay).optEps(eps1, eps2).optD(d)
                .optWeightDecay(weightDecay).optMaximize(maximize);
    }

    @Override
    public Adafactor withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "adafactor";
    }

    /**
     * Every state a parameter may keep: {@link StateKind#VARIANCE} for a one-dimensional parameter,
     * {@link StateKind#ROW_VAR} and {@link StateKind#COL_VAR} for one of rank &gt;= 2 (shapes
     * [..., R, 1] and [..., 1, C]), as PyTorch keeps them; {@link Parameter#stateKinds()} names a
     * parameter's own.
     */
    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.VARIANCE, StateKind.ROW_VAR, StateKind.COL_VAR);
    }

    /** Builder; every value is optional, the defaults are PyTorch's. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-2;
        private double beta2Decay = -0.8;
        private double eps1 = FLOAT32_EPSILON;
        private double eps2 = 1e-3;
        private double d = 1.0;
        private double weightDecay;
        private boolean maximize;

        /** The learning rate lr (default 1e-2). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** The exponent of t in the interpolation weight (default -0.8). */
        public Builder optBeta2Decay(double v) { beta2Decay = v; return this; }
        /** The epsilons (default ({@link #FLOAT32_EPSILON}, 1e-3), PyTorch's (None, 1e-3)). */
        public Builder optEps(double e1, double e2) { eps1 = e1; eps2 = e2; return this; }
        /** The update clipping threshold d (default 1). */
        public Builder optD(double v) { d = v; return this; }
        /** The decoupled weight decay coefficient (default 0). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** Maximizes the objective (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The configuration, validated. */
        public Adafactor build() {
            return new Adafactor(learningRate, beta2Decay, eps1, eps2, d, weightDecay, maximize);
        }
    }
}
