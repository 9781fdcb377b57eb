package io.fusedopt.internal;

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
    private short[] bits = new short[0];
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
            bits = new short[n];
        }
        WholeTensorIo.readParamAndGrad(o, param, grad, n, flags, control);
        AbstractTensorBuffer[] slotBuffers = o.slots();
        for (int j = 0; j < slots.length; j++) if (slots[j] != null) slotBuffers[j].read(0, slots[j], 0, slots[j].length);
        kernel.step(new FactoredKernel.Tensor(o.shape(), n, param, grad, slots, update, o.statePrecision()), scalars, flags);
        WholeTensorIo.storeParam(o, param, n, flags, control, rounding, bits);
        for (int j = 0; j < slots.length; j++) if (slots[j] != null) slotBuffers[j].write(slots[j], 0, 0, slots[j].length);
    }
}
