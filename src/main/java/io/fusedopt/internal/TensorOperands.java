package io.fusedopt.internal;

import io.fusedopt.Precision;

/**
 * One tensor as an update kernel sees it: param, grad, the kernel's state slots (null where
 * unused), the fp32 master weights (null unless the param is 16-bit and master weights are kept)
 * and the index of its group.
 */
public record TensorOperands(AbstractTensorBuffer param, AbstractTensorBuffer grad, AbstractTensorBuffer[] slots,
                             AbstractTensorBuffer master, int group) {

    /** True when the float32-only kernel cannot run this tensor (a 16-bit operand or master weights). */
    public boolean needsMixedKernel() {
        if (master != null || param.precision() != Precision.FP32
                || grad.precision() != Precision.FP32) {
            return true;
        }
        for (AbstractTensorBuffer s : slots) if (s != null && s.precision() != Precision.FP32) return true;
        return false;
    }

    /** The precision of the state slots (all the same), FP32 when there are none. */
    public Precision statePrecision() {
        for (AbstractTensorBuffer s : slots) if (s != null) return s.precision();
        return Precision.FP32;
    }
}
