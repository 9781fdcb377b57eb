package io.fusedopt.internal;

import java.util.List;

/**
 * The tensors one update launch covers: all tensors of one kernel kind, either all in float32
 * (the float32-only entry point) or those with 16-bit operands or master weights ({@code mixed}).
 */
public record KernelBatch(UpdateKernel kernel, boolean mixed, List<TensorOperands> tensors) {
    public KernelBatch {
        tensors = List.copyOf(tensors);
    }
}
