package io.fusedopt.internal;

import java.util.List;

/**
 * The tensors one update launch covers: all tensors of one kernel kind, either all in float32
 * (the float32-only entry point), those with 16-bit operands or master weights ({@code mixed}),
 * among them, for a kernel with a {@code _narrow} entry point, those whose every operand is 16-bit
 * ({@code narrow}, always mixed too), or those with 8-bit blockwise states ({@code quantized}, with
 * any param and grad formats).
 */
public record KernelBatch(UpdateKernel kernel, boolean mixed, boolean narrow, boolean quantized, List<TensorOperands> tensors) {
    public KernelBatch {
        tensors = List.copyOf(tensors);
    }
}
