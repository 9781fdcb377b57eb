package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.TensorOperands;
import java.util.List;
import java.util.Map;

/** One registered tensor: its param and grad buffers, its state tensors, its group. */
public final class Parameter {
    private final DeviceOptimizer optimizer;
    private final ParamGroup group;
    private final String name;
    private final AbstractTensorBuffer param;
    private final AbstractTensorBuffer grad;
    private final Map<StateKind, AbstractTensorBuffer> states;
    private final AbstractTensorBuffer master;

    Parameter(DeviceOptimizer optimizer, ParamGroup group, String name, AbstractTensorBuffer param,
              AbstractTensorBuffer grad, Map<StateKind, AbstractTensorBuffer> states, AbstractTensorBuffer master) {
        this.optimizer = optimizer;
        this.group = group;
        this.name = name;
        this.param = param;
        this.grad = grad;
        this.states = states;
        this.master = master;
    }

    public String name() { return name; }

    public ParamGroup group() { return group; }

    public long length() { return param.length(); }

    /** The buffer updated in place at each step. */
    public TensorBuffer param() { return param; }

    /** The buffer the step reads gradients from. */
    public TensorBuffer grad() { return grad; }

    /** The state tensors this parameter keeps, in the algorithm's order. */
    public List<StateKind> stateKinds() {
        return List.copyOf(states.keySet());
    }

    /**
     * A read-only view of one state tensor (m, v, a momentum buffer, ...). Reads through it see
     * every step queued before the read; it stays valid until the optimizer closes.
     *
     * @throws IllegalArgumentException when this variant keeps no such state
     */
    public TensorBuffer state(StateKind kind) {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            AbstractTensorBuffer s = states.get(kind);
            if (s == null) {
                throw new IllegalArgumentException("parameter '" + name + "' keeps no " + kind.stateName() + " state; it keeps "
                        + stateKinds());
            }
            return new ReadOnlyStateView(optimizer, s);
        }
    }

    /**
     * A read-only view of the fp32 master weights of a 16-bit param (the values the updates run
     * on), or empty when the param is float32 or the optimizer keeps no master weights.
     */
    public java.util.Optional<TensorBuffer> masterWeights() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return master == null ? java.util.Optional.empty() : java.util.Optional.of(new ReadOnlyStateView(optimizer, master));
        }
    }

    AbstractTensorBuffer paramBuffer() { return param; }

    AbstractTensorBuffer masterBuffer() { return master; }

    /** The state buffers in the algorithm's order. */
    Map<StateKind, AbstractTensorBuffer> stateBuffers() { return states; }

    /** This tensor as a kernel sees it: state buffers in the kernel's slot order. */
    TensorOperands operands(StateKind[] slots, int group) {
        AbstractTensorBuffer[] slotBuffers = new AbstractTensorBuffer[slots.length];
        for (int i = 0; i < slots.length; i++) slotBuffers[i] = slots[i] == null ? null : states.get(slots[i]);
        return new TensorOperands(param, grad, slotBuffers, master, group);
    }

    @Override
    public String toString() {
        return "Parameter[" + name + ", " + param.length() + " elements, group " + group.index() + "]";
    }
}
