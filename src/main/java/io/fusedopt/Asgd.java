package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Averaged SGD (PyTorch's {@code torch.optim.ASGD}, its single-tensor function
 * {@code _single_tensor_asgd}): SGD with a decay term, a step size that shrinks as
 * {@code (1 + lambd*lr*(t-1))^-alpha}, and {@code ax}, the running average of the parameters of
 * steps {@code t0 + 2} onward (for an integer {@code t0}; before that a copy of the parameter).
 *
 * <pre>
 *   eta_t = lr_t / pow(1 + lambd*lr_t*(t - 1), alpha)   on the host, in double, rounded to float32
 *   mu_t  = 1 / max(1, (t - 1) - t0)                   on the host, in double, rounded to float32
 *   decay = 1 - lambd*eta_t                            in double from the float32 eta_t, rounded to float32
 *   g' = maximize ? -g : g;  g' = fma(weightDecay, p, g') when weightDecay != 0
 *   p  = p * decay
 *   p  = fma(-eta_t, g', p)
 *   ax = mu_t != 1 ? ax + (p - ax) * mu_t : p          three roundings: subtract, multiply, add
 * </pre>
 * with {@code t} the tensor's own step (1 at its first) and {@code lr_t} the step's learning rate;
 * {@code pow} is {@code StepScalars.pow} on the host and {@code fo_pow} on the device (one sequence
 * of IEEE double operations, so both give the same bits; not {@code Math.pow}). At {@code t = 1},
 * {@code eta_1 = lr} and {@code mu_1 = 1}, so {@code ax} starts as a copy of the parameter.
 * State: {@link StateKind#AX}, the averaged parameter (the one to evaluate with once averaging runs).
 *
 * <p>Where this differs from PyTorch: PyTorch computes {@code eta} and {@code mu} at the end of a
 * step, from that step's counter and the group's lr at that time, and uses them in the next step
 * (they start at {@code lr} and 1). Its step {@code t} therefore uses the same formulas as here,
 * but with the lr of step {@code t - 1}: a learning-rate change (a schedule, {@link #withLearningRate})
 * acts here on the step it is made for and one step later in PyTorch. With a constant lr the two
 * agree. PyTorch accepts any {@code lambd}, {@code alpha} and {@code t0}; here each must be a
 * finite float32 value {@code >= 0} (a negative one has no meaning as a decay, a power of decay or
 * a step count). The multiplication {@code p*decay} and the FMA are as in PyTorch's CPU kernels
 * ({@code mul_}, then {@code add_(grad, alpha=-eta)}, which its vectorized loop computes as one FMA).
 * Defaults follow PyTorch: lr = 1e-2, lambd = 1e-4, alpha = 0.75, t0 = 1e6, weightDecay = 0.
 */
public record Asgd(double learningRate, double lambd, double alpha, double t0, double weightDecay, boolean maximize)
        implements OptimizerConfig {

    /** Validates each value as the float32 the kernels use; the message names the value. */
    public Asgd {
        Check.learningRate(learningRate);
        Check.nonNegative("lambd", lambd);
        Check.nonNegative("alpha", alpha);
        Check.nonNegative("t0", t0);
        Check.nonNegative("weightDecay", weightDecay);
    }

    /** ASGD with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optLambd(lambd).optAlpha(alpha).optT0(t0)
                .optWeightDecay(weightDecay).optMaximize(maximize);
    }

    @Override
    public Asgd withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "asgd";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.AX);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-2;
        private double lambd = 1e-4;
        private double alpha = 0.75;
        private double t0 = 1e6;
        private double weightDecay;
        private boolean maximize;

        /** Sets the learning rate lr (default 1e-2). */
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** Sets the decay term lambd (default 1e-4). */
        public Builder optLambd(double v) { lambd = v; return this; }
        /** Sets the power alpha of the step-size decay (default 0.75). */
        public Builder optAlpha(double v) { alpha = v; return this; }
        /** Sets t0: ax averages the parameters from step t0 + 2 on (default 1e6). */
        public Builder optT0(double v) { t0 = v; return this; }
        /** Sets the L2 weight decay (default 0). */
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** Maximizes the objective instead of minimizing it (default false). */
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        /** The validated configuration. */
        public Asgd build() {
            return new Asgd(learningRate, lambd, alpha, t0, weightDecay, maximize);
        }
    }
}
