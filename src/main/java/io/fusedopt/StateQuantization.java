package io.fusedopt;

/**
 * How optimizer states are stored beside {@link Precision}'s formats
 * ({@link DeviceOptimizer.Builder#optStateQuantization}).
 */
public enum StateQuantization {
    /** States are stored in the optimizer's state precision (FP32 or BF16). */
    NONE,
    /**
     * bitsandbytes' 8-bit blockwise states: each state tensor is cut into blocks of
     * {@link #BLOCK} elements, each block keeps one float32 absmax and one byte per element, the
     * code of the nearest value of a 256-entry dynamic map (the signed map for states that change
     * sign, such as first moments; the unsigned one for second moments and sums). Every step
     * dequantizes a block, updates it in float32 by the algorithm's own formula, and quantizes it
     * again with its new absmax. A state then takes 1 + 4/256 bytes per element instead of 4.
     *
     * <p>Only the algorithms bitsandbytes has 8-bit forms of keep such states: Adam and AdamW,
     * Momentum, RMSProp, Adagrad, Lion and AdEMAMix; and only tensors of at least
     * {@link #MIN_ELEMENTS} elements (bitsandbytes' {@code min_8bit_size}): the states of smaller
     * tensors keep the state precision, where 8 bits would save little and cost accuracy. The
     * rule, bit for bit the same on every backend, is in docs/algorithms.md ("8-bit blockwise
     * states").
     */
    BLOCKWISE_8BIT;

    /** Elements per quantization block (bitsandbytes' blockwise optimizers' block size). */
    public static final int BLOCK = 256;

    /** Tensors with fewer elements keep unquantized states (bitsandbytes' {@code min_8bit_size}). */
    public static final int MIN_ELEMENTS = 4096;
}
