package io.fusedopt.internal;

/**
 * One tensor as an update kernel sees it: param, grad, the kernel's state slots (null where
 * unused) and the index of its group among the launch's groups.
 */
public record TensorOperands(AbstractTensorBuffer param, AbstractTensorBuffer grad, AbstractTensorBuffer[] slots,
                             int group) {}
