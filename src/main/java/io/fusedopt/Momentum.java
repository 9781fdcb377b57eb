package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * SGD with momentum, in either of the two conventions found in the literature.
 *
 * <p>{@link Form#BUFFER} (PyTorch's {@code SGD(momentum=...)}), state {@link StateKind#MOMENTUM_BUFFER}:
 * <pre>
 *   g' = maximize ? -g : g;  g' = fma(weightDecay, p, g') when weightDecay != 0
 *   b  = g'                                   on the first step (t = 1)
 *   b  = fma(mu, b, (1 - dampening) * g')     afterwards
 *   d  = nesterov ? fma(mu, b, g') : b        g' + mu*b
 *   p  = fma(-lr, d, p)
 * </pre>
 * {@link Form#VELOCITY} (Sutskever et al.), state {@link StateKind#VELOCITY}, starting at zero:
 * <pre>
 *   a  = -lr * g'
 *   v  = fma(mu, v, a)                        mu*v - lr*g'
 *   p  = nesterov ? fma(mu, v, p + a) : p + v
 * </pre>
 * The two forms agree while lr is constant (v = -lr*b) and differ once a schedule changes lr: the
 * buffer form applies the new lr to the whole buffer, the velocity form only to new gradients.
 * Defaults follow PyTorch: lr = 1e-3, dampening = 0, weightDecay = 0. The momentum mu is required
 * and must lie in [0, 1). As in PyTorch, Nesterov needs mu > 0 and dampening = 0; the velocity form
 * has no dampening.
 */
public record Momentum(double learningRate, double momentum, double dampening, double weightDecay,
                       boolean nesterov, Form form, boolean maximize) implements OptimizerConfig {

    /** Which momentum convention to use. */
    public enum Form { BUFFER, VELOCITY }

    public Momentum {
        Check.learningRate(learningRate);
        Check.unitInterval("momentum", momentum, false);
        Check.unitInterval("dampening", dampening, true);
        Check.nonNegative("weightDecay", weightDecay);
        Check.notNull("form", form);
        if (nesterov && ((float) momentum <= 0f || dampening != 0)) {
            throw new IllegalArgumentException(
                    "nesterov momentum needs momentum > 0 and dampening = 0, got momentum=" + momentum
                            + ", dampening=" + dampening);
        }
        if (form == Form.VELOCITY && dampening != 0) {
            throw new IllegalArgumentException(
                    "the velocity form has no dampening; got dampening=" + dampening + " (use Form.BUFFER)");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).setMomentum(momentum).optDampening(dampening)
                .optWeightDecay(weightDecay).optNesterov(nesterov).optForm(form).optMaximize(maximize);
    }

    @Override
    public Momentum withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    @Override
    public String algorithm() {
        return "momentum";
    }

    @Override
    public List<StateKind> stateKinds() {
        return List.of(form == Form.BUFFER ? StateKind.MOMENTUM_BUFFER : StateKind.VELOCITY);
    }

    /** Builder; {@link #setMomentum} is required, the rest optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private Double momentum;
        private double dampening;
        private double weightDecay;
        private boolean nesterov;
        private Form form = Form.BUFFER;
        private boolean maximize;

        public Builder optLearningRate(double v) { learningRate = v; return this; }
        public Builder setMomentum(double v) { momentum = v; return this; }
        public Builder optDampening(double v) { dampening = v; return this; }
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        public Builder optNesterov(boolean v) { nesterov = v; return this; }
        public Builder optForm(Form v) { form = v; return this; }
        public Builder optMaximize(boolean v) { maximize = v; return this; }

        public Momentum build() {
            if (momentum == null) {
                throw new IllegalArgumentException("momentum is required: call setMomentum(mu) with mu in [0, 1)");
            }
            return new Momentum(learningRate, momentum, dampening, weightDecay, nesterov, form, maximize);
        }
    }
}
