package io.fusedopt.internal;

import io.fusedopt.Adagrad;
import io.fusedopt.Adam;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.RmsProp;
import io.fusedopt.Sgd;
import io.fusedopt.StateKind;
import io.fusedopt.Precision;
import java.util.Arrays;

/**
 * How one configuration runs: which kernel, which state tensor sits in each of its state slots
 * (null where the variant does not use the slot), and the flags that do not change from step to
 * step.
 */
public record UpdatePlan(UpdateKernel kernel, StateKind[] slots, int staticFlags) {

    public static UpdatePlan of(OptimizerConfig config) {
        if (config instanceof Sgd c) {
            return new UpdatePlan(UpdateKernel.SGD, new StateKind[0], common(c.maximize(), c.weightDecay()));
        }
        if (config instanceof Momentum c) {
            boolean buffer = c.form() == Momentum.Form.BUFFER;
            int flags = common(c.maximize(), c.weightDecay()) | (c.nesterov() ? KernelFlags.NESTEROV : 0);
            return new UpdatePlan(buffer ? UpdateKernel.MOMENTUM_BUFFER : UpdateKernel.MOMENTUM_VELOCITY,
                    new StateKind[] {buffer ? StateKind.MOMENTUM_BUFFER : StateKind.VELOCITY}, flags);
        }
        if (config instanceof RmsProp c) {
            int flags = common(c.maximize(), c.weightDecay())
                    | (c.centered() ? KernelFlags.CENTERED : 0)
                    | (c.usesMomentum() ? KernelFlags.MOMENTUM : 0);
            return new UpdatePlan(UpdateKernel.RMSPROP, new StateKind[] {
                StateKind.SQUARE_AVG,
                c.centered() ? StateKind.GRAD_AVG : null,
                c.usesMomentum() ? StateKind.MOMENTUM_BUFFER : null}, flags);
        }
        if (config instanceof Adam c) {
            boolean decay = (float) c.weightDecay() != 0f;
            boolean decoupled = c.weightDecayMode() == Adam.WeightDecay.DECOUPLED;
            int flags = (c.maximize() ? KernelFlags.MAXIMIZE : 0)
                    | (decay && !decoupled ? KernelFlags.L2_DECAY : 0)
                    | (decay && decoupled ? KernelFlags.DECOUPLED_DECAY : 0)
                    | (c.amsgrad() ? KernelFlags.AMSGRAD : 0)
                    | (c.form() == Adam.Form.STEP_SIZE ? KernelFlags.STEP_SIZE_FORM : 0);
            return new UpdatePlan(UpdateKernel.ADAM, new StateKind[] {
                StateKind.EXP_AVG, StateKind.EXP_AVG_SQ, c.amsgrad() ? StateKind.MAX_EXP_AVG_SQ : null}, flags);
        }
        if (config instanceof Adagrad c) {
            return new UpdatePlan(UpdateKernel.ADAGRAD, new StateKind[] {StateKind.SUM},
                    common(c.maximize(), c.weightDecay()));
        }
        throw new IllegalArgumentException("unknown configuration " + config);
    }

    /**
     * Bytes one element's update moves in float32, the floor of a memory-bound step: it reads the
     * param, the grad and every used state, and writes the param and every used state.
     */
    public int bytesPerElement() {
        return bytesPerElement(Precision.FP32, Precision.FP32, Precision.FP32, false);
    }

    /**
     * Bytes one element's update moves with these storage formats: reads of the param (or the
     * fp32 master), the grad and every used state; writes of the param, the master when there is
     * one, and every used state.
     */
    public int bytesPerElement(Precision param, Precision grad, Precision state,
                               boolean master) {
        int states = usedSlots();
        int read = (master ? Float.BYTES : param.bytes()) + grad.bytes() + states * state.bytes();
        int written = param.bytes() + (master ? Float.BYTES : 0) + states * state.bytes();
        return read + written;
    }

    /** Same kernel and same state tensors in the same slots (hyper-parameters may differ). */
    public boolean sameLayout(UpdatePlan other) {
        return kernel == other.kernel && Arrays.equals(slots, other.slots);
    }

    /** The number of state slots this variant uses. */
    public int usedSlots() {
        int states = 0;
        for (StateKind slot : slots) if (slot != null) states++;
        return states;
    }

    /** The value a state tensor of this configuration starts at. */
    public static float initialValue(OptimizerConfig config, StateKind kind) {
        if (config instanceof Adagrad c && kind == StateKind.SUM) {
            return (float) c.initialAccumulatorValue();
        }
        return 0f;
    }

    private static int common(boolean maximize, double weightDecay) {
        return (maximize ? KernelFlags.MAXIMIZE : 0) | ((float) weightDecay != 0f ? KernelFlags.L2_DECAY : 0);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof UpdatePlan p && kernel == p.kernel && staticFlags == p.staticFlags
                && Arrays.equals(slots, p.slots);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * kernel.hashCode() + Arrays.hashCode(slots)) + staticFlags;
    }

    @Override
    public String toString() {
        return "UpdatePlan[" + kernel + ", slots=" + Arrays.toString(slots) + ", flags=" + staticFlags + "]";
    }
}
