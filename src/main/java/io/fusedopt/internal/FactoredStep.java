package io.fusedopt.internal;

import io.fusedopt.Precision;
import java.util.ArrayList;
import java.util.List;

/**
 * The factored kernels' tensors of a host step program ({@link FactoredKernel}), updated whole, one
 * after the other, after the finalize computation and only when it does not skip the step: each
 * tensor's operands are read as float32 (the master instead of the param where there is one, the
 * gradient prepared by {@code control}: unscaled and clipped), the kernel steps them, and they are
 * stored back (the master first, the param rounded to its format: to nearest, or stochastically
 * for a 16-bit param without a master where the entry asks), as the chunk-wise programs store a
 * widened chunk. Both CPU backends run it, so they agree bit for bit.
 */
public final class FactoredStep {
    private final List<TensorOperands> tensors;
    private final List<FactoredKernel> kernels;
    private final float[] scalars = new float[StepScalars.SCALAR_STRIDE];
    private final StochasticRounding rounding = new StochasticRounding();
    private float[] param = new float[0], grad = new float[0], update = new float[0];
    /** Per tensor, its states' float32 copies (allocated at its first step, so a step allocates nothing after). */
    private final float[][][] states;

    private FactoredStep(List<TensorOperands> tensors, List<FactoredKernel> kernels) {
        this.tensors = tensors;
        this.kernels = kernels;
        this.states = new float[tensors.size()][][];
    }

    /** The factored kernels' tensors among {@code batches}, or null where there is none. */
    public static FactoredStep of(List<KernelBatch> batches) {
        List<TensorOperands> tensors = new ArrayList<>();
        List<FactoredKernel> kernels = new ArrayList<>();
        for (KernelBatch batch : batches) {
            if (!(batch.kernel() instanceof FactoredKernel kernel)) continue;
            for (TensorOperands t : batch.tensors()) {
                tensors.add(t);
                kernels.add(kernel);
            }
        }
        return tensors.isEmpty() ? null : new FactoredStep(tensors, kernels);
    }

    /** Whether {@code batch} is one of the tensors this class updates (a chunk-wise program leaves them out). */
    public static boolean updates(KernelBatch batch) {
        return batch.kernel() instanceof FactoredKernel;
    }

    /** Updates every tensor with its entry's scalars and flags from {@code groups}, once the finalize computation ran. */
    public void run(GroupTable groups, StepControl control) {
        for (int t = 0; t < tensors.size(); t++) {
            TensorOperands operands = tensors.get(t);
            int group = operands.group();
            System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
            if (states[t] == null) {
                AbstractTensorBuffer[] slots = operands.slots();
                states[t] = new float[slots.length][];
                for (int j = 0; j < slots.length; j++) if (slots[j] != null) states[t][j] = new float[(int) slots[j].length()];
            }
            step(kernels.get(t), operands, states[t], groups.flags()[group], control);
        }
    }

    private void step(FactoredKernel kernel, TensorOperands o, float[][] slots, int flags, StepControl control) {
        int n = (int) o.param().length();
        if (param.length < n) {
            param = new float[n];
            grad = new float[n];
            update = new float[n];
        }
        AbstractTensorBuffer master = o.master();
        (master != null ? master : o.param()).read(0, param, 0, n);
        o.grad().read(0, grad, 0, n);
        for (int i = 0; i < n; i++) grad[i] = control.prepareGrad(grad[i], flags);
        AbstractTensorBuffer[] slotBuffers = o.slots();
        for (int j = 0; j < slots.length; j++) if (slots[j] != null) slotBuffers[j].read(0, slots[j], 0, slots[j].length);
        kernel.step(new FactoredKernel.Tensor(o.shape(), n, param, grad, slots, update, o.statePrecision()), scalars, flags);
        if (master != null) master.write(param, 0, 0, n);
        AbstractTensorBuffer p = o.param();
        if (KernelFlags.has(flags, KernelFlags.STOCHASTIC_ROUNDING) && master == null && p.precision() != Precision.FP32) {
            // Each value rounded stochastically is a 16-bit value: storing it rounds to itself.
            for (int i = 0; i < n; i++) {
                param[i] = Conversions.widen(p.precision(),
                        rounding.narrow(p.precision(), param[i], control.roundingSeed, control.step, o.roundingStream(), i));
            }
        }
        p.write(param, 0, 0, n);
        for (int j = 0; j < slots.length; j++) if (slots[j] != null) slotBuffers[j].write(slots[j], 0, 0, slots[j].length);
    }
}
