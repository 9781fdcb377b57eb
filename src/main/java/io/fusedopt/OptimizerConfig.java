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
public sealed interface OptimizerConfig permits Sgd, Momentum, RmsProp, Adam, Adagrad {

    /** The learning rate lr. */
    double learningRate();

    /** A copy with another learning rate (for schedules); validated like the original. */
    OptimizerConfig withLearningRate(double learningRate);

    /** A short, stable name of the algorithm family ("adam", "sgd", ...). */
    String algorithm();

    /** The state tensors this variant keeps per parameter, in a fixed order. */
    List<StateKind> stateKinds();
}
