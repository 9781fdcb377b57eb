package io.fusedopt.internal;

import io.fusedopt.Precision;

import java.nio.charset.StandardCharsets;

/**
 * One tensor as an update kernel sees it: param, grad, the kernel's state slots (null where
 * unused), the fp32 master weights (null unless the param is 16-bit and master weights are kept),
 * the index of its group, the random stream its param's stochastic rounding draws from, and its
 * shape (row-major; {@code [length]} for a tensor registered without one), which the kernels that
 * see a tensor as a matrix read, and its registration order: its index among the step's tensors
 * in the order they were registered (groups in order, each group's tensors in order), in which the
 * gradient statistics add their chunks' partial sums ({@link GradientStatistics#registrationPositions}),
 * whatever launch batches the tensors fall in.
 */
public record TensorOperands(AbstractTensorBuffer param, AbstractTensorBuffer grad, AbstractTensorBuffer[] slots,
                             AbstractTensorBuffer master, int group, int roundingStream, long[] shape, int registrationOrder) {

    /**
     * The random stream of the parameter named {@code name}: the 32-bit FNV-1a hash of its UTF-8
     * bytes, so that a parameter draws the same bits whatever the order it was added in, in this
     * run and in a resumed one (two names that collide only share a stream).
     */
    public static int roundingStream(String name) {
        int hash = 0x811C9DC5;
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            hash ^= b & 0xFF;
            hash *= 0x01000193;
        }
        return hash;
    }

    /** True when the float32-only kernel cannot run this tensor (a 16-bit operand or master weights). */
    public boolean needsMixedKernel() {
        if (master != null || param.precision() != Precision.FP32
                || grad.precision() != Precision.FP32) {
            return true;
        }
        for (AbstractTensorBuffer s : slots) if (s != null && s.precision() != Precision.FP32) return true;
        return false;
    }

    /**
     * True when every operand is 16-bit (param, grad and each state slot, none 8-bit) and there
     * are no master weights: what the {@code _narrow} entry point runs ({@link UpdateKernel#narrowEntryPoint}).
     */
    public boolean narrow() {
        if (master != null || param.precision() == Precision.FP32 || grad.precision() == Precision.FP32) return false;
        for (AbstractTensorBuffer s : slots) {
            if (s != null && (s instanceof QuantizedBuffer || s.precision() == Precision.FP32)) return false;
        }
        return true;
    }

    /** Whether its states are 8-bit blockwise ({@link QuantizedBuffer}): all of them or none. */
    public boolean quantized() {
        for (AbstractTensorBuffer s : slots) if (s instanceof QuantizedBuffer) return true;
        return false;
    }

    /** The precision of the state slots (all the same), FP32 when there are none. */
    public Precision statePrecision() {
        for (AbstractTensorBuffer s : slots) if (s != null) return s.precision();
        return Precision.FP32;
    }
}
