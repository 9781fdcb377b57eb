package io.fusedopt;

import java.util.List;

/**
 * The hyper-parameters of one algorithm variant, for a whole optimizer or one parameter group.
 * Immutable and validated on construction: every value is checked after rounding to float32, the
 * precision the update runs in, and a value outside its domain is an
 * {@link IllegalArgumentException} naming the parameter.
 *
 * <p>Numerics common to every algorithm: each hyper-parameter is rounded to float32 once; every
 * per-step scalar derived from them (bias corrections, decayed learning rates, 1 - beta) is computed
 * in double from those float32 values and the step counter t (which starts at 1), then rounded once
 * to float32 and passed identically to both backends. The per-element update is then a fixed
 * sequence of float32 operations, fused multiply-adds written explicitly, so that the CPU reference
 * and the CUDA kernels agree bit for bit.
 */
public sealed interface OptimizerConfig permits Sgd, Momentum, RmsProp, Adam, Adagrad, Adamax, Adadelta, Asgd, Rprop, NAdam, RAdam, Lion, AdEMAMix, Lars, Lamb,
        Muon, Adafactor {

    /** The learning rate lr. */
    double learningRate();

    /** A copy with another learning rate (for schedules); validated like the original. */
    OptimizerConfig withLearningRate(double learningRate);

    /** A short, stable name of the algorithm family ("adam", "sgd", ...). */
    String algorithm();

    /** The state tensors this variant keeps per parameter, in a fixed order. */
    List<StateKind> stateKinds();

    /**
     * A builder holding this configuration's values, to derive a group's variant of it. Each
     * algorithm's {@code toBuilder()} returns its own builder (for example {@link Adam.Builder},
     * with every option of Adam); this one, reached from any {@code OptimizerConfig} such as
     * {@link DeviceOptimizer#defaults()}, offers the options every algorithm has, without a cast:
     * {@code opt.addGroup(opt.defaults().toBuilder().optWeightDecay(0).build())}.
     */
    Builder toBuilder();

    /** The options every algorithm's builder has; each builder returns itself, of its own type. */
    interface Builder {
        /** The learning rate lr. */
        Builder optLearningRate(double v);

        /** The weight decay (its form is the algorithm's: L2, or decoupled for AdamW). */
        Builder optWeightDecay(double v);

        /** Maximizes the objective instead of minimizing it. */
        Builder optMaximize(boolean v);

        /** The configuration, validated. */
        OptimizerConfig build();
    }
}
