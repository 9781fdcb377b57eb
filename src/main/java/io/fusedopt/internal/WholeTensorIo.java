package io.fusedopt.internal;

import io.fusedopt.Precision;

/**
 * How the host step programs read a tensor they update whole (the factored kernels' FactoredStep,
 * the matrix kernels' HostMatrixPhase) into float32 arrays and store it back, as the mixed kernels
 * do element by element: the master instead of a 16-bit param, the gradient prepared (unscaled and
 * clipped); then the master, and the param rounded to nearest or, where the step asks, stochastically.
 */
public final class WholeTensorIo {
    private WholeTensorIo() {}

    /** Elements [0, n) of the param (the master where there is one) and of the prepared gradient. */
    public static void readParamAndGrad(TensorOperands tensor, float[] param, float[] grad, int n, int flags, StepControl control) {
        AbstractTensorBuffer master = tensor.master();
        (master != null ? master : tensor.param()).copyTo(0, param, 0, n);
        tensor.grad().copyTo(0, grad, 0, n);
        if (KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP)) {
            for (int i = 0; i < n; i++) grad[i] = control.prepareGrad(grad[i], flags);
        }
    }

    /**
     * The updated {@code param[0, n)} stored: the master (when there is one), then the param, rounded
     * to nearest or stochastically ({@code param} then holds the rounded values). {@code bits} is
     * scratch of at least n shorts, used for stochastic rounding only.
     */
    public static void storeParam(TensorOperands tensor, float[] param, int n, int flags, StepControl control,
                                  StochasticRounding rounding, short[] bits) {
        AbstractTensorBuffer target = tensor.param();
        if (tensor.master() != null) tensor.master().copyFrom(param, 0, 0, n);
        Precision precision = target.precision();
        if (KernelFlags.has(flags, KernelFlags.STOCHASTIC_ROUNDING) && tensor.master() == null && precision != Precision.FP32) {
            rounding.narrow(precision, param, 0, bits, 0, n, control.roundingSeed, control.step, tensor.roundingStream(), 0);
            // Each rounded value is exact in the param's format, so storing it widened rounds it to itself.
            for (int i = 0; i < n; i++) param[i] = Conversions.widen(precision, bits[i]);
        }
        target.copyFrom(param, 0, 0, n);
    }
}
