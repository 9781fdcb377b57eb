package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Check;
import io.fusedopt.internal.TensorOperands;
import java.util.List;
import java.util.Map;

/**
 * One registered tensor: its param and grad buffers, its state tensors, its group, its own step
 * count, and whether it is frozen.
 *
 * <p><b>Own step count.</b> As PyTorch keeps {@code state["step"]} per parameter, each tensor
 * counts the steps that updated it ({@link #stepCount()}); its bias corrections (Adam), learning-rate
 * decay (Adagrad) and first-step rule (a momentum buffer starts as the gradient) follow that count.
 * A tensor registered before the first step counts with the optimizer; one registered after k
 * applied steps takes its own step 1 at the optimizer's step k + 1. Internally a tensor holds a
 * step offset: its count is the optimizer's applied-step counter t minus the offset.
 */
public final class Parameter {
    /**
     * The longest parameter name, in chars ({@link ParamGroup#add} refuses longer ones). A name is
     * part of the checkpoint's keys ({@code group_of.NAME/max_exp_avg_sq} is the longest, 24 chars
     * more), and the checkpoint reader refuses keys over 50,000 chars; so every name that is
     * accepted also saves and loads.
     */
    public static final int MAX_NAME_LENGTH = 49_000;

    private final DeviceOptimizer optimizer;
    private final ParamGroup group;
    private final String name;
    private final AbstractTensorBuffer param;
    /** Replaced only by {@link #unfreeze(TensorBuffer)}. */
    private AbstractTensorBuffer grad;
    private final Map<StateKind, AbstractTensorBuffer> states;
    private final AbstractTensorBuffer master;
    /** Its shape where registered with one of rank other than 1; null: one-dimensional. */
    private final long[] dims;
    /** While not frozen: the optimizer's applied-step counter minus this tensor's own count. */
    private long stepOffset;
    private boolean frozen;
    /** While frozen: this tensor's own count, kept until it is unfrozen. */
    private long frozenStepCount;

    Parameter(DeviceOptimizer optimizer, ParamGroup group, String name, AbstractTensorBuffer param,
              AbstractTensorBuffer grad, Map<StateKind, AbstractTensorBuffer> states, AbstractTensorBuffer master, long[] dims) {
        this.optimizer = optimizer;
        this.group = group;
        this.name = name;
        this.param = param;
        this.grad = grad;
        this.states = states;
        this.master = master;
        this.dims = dims;
    }

    public String name() { return name; }

    public ParamGroup group() { return group; }

    public long length() { return param.length(); }

    /**
     * The shape it was registered with ({@link ParamGroup#add(String, TensorBuffer, TensorBuffer, long...)}),
     * {@code [length()]} when registered without one; a copy. Checkpoints record it, and a load
     * checks it.
     */
    public long[] shape() {
        return dims == null ? new long[] {param.length()} : dims.clone();
    }

    /** {@link #shape()} where it is not one-dimensional, else null (no array per tensor). */
    long[] dimsOrNull() {
        return dims;
    }

    /**
     * The shape of its state {@code kind} where it is not one-dimensional, else null: the
     * parameter's own for a per-element state, an Adafactor factor's [..., R, 1] or [..., 1, C].
     */
    long[] stateDimsOrNull(StateKind kind) {
        long[] stateShape = io.fusedopt.internal.UpdatePlan.stateShape(group.config(), kind, shape());
        return stateShape.length == 1 ? null : stateShape;
    }

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
        Check.notNull("kind", kind);
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

    /**
     * The steps that updated this tensor (PyTorch's per-parameter {@code state["step"]}): the
     * optimizer's {@link DeviceOptimizer#stepCount()} for a tensor registered before the first step
     * and never frozen, fewer for a tensor added late or frozen for a while. Waits for the device
     * where {@link DeviceOptimizer#stepCount()} does.
     */
    public long stepCount() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return ownSteps(optimizer.appliedSteps());
        }
    }

    /** Whether this tensor is frozen ({@link #freeze()}). */
    public boolean isFrozen() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return frozen;
        }
    }

    /**
     * Excludes this tensor from the following steps, as {@code requires_grad_(False)} does in
     * PyTorch: its param, master weights and states are not updated and keep their values, its
     * gradient is not read (nor counted in the gradient norm used for clipping), and its own step
     * count stops ({@link #stepCount()}). {@link DeviceOptimizer#zeroGrad()} still zeroes its
     * gradient. The next step rebuilds the step program: a {@link StepGraph} captured before can no
     * longer be replayed (capture again). Waits for queued steps on CUDA.
     *
     * @throws IllegalStateException when the tensor is already frozen, the optimizer is closed or
     *     an earlier step failed; nothing changes then
     */
    public void freeze() {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            if (frozen) throw new IllegalStateException("parameter '" + name + "' is already frozen");
            long t = optimizer.appliedSteps();
            frozenStepCount = t - stepOffset;
            frozen = true;
            optimizer.tensorsChanged();
        }
    }

    /**
     * Includes a frozen tensor in the updates again, from the next step on, with its own step count
     * where it stopped: frozen at the optimizer's step a and unfrozen at step b, its next update is
     * its own step {@code stepCount() + 1}, bit for bit what an optimizer that only ever held this
     * tensor would do at that step (Adam's bias correction, the momentum buffer's rule). Learning-rate
     * schedules keep following the optimizer's counter. As {@link #freeze()}, this ends the use of
     * earlier captures.
     *
     * @throws IllegalStateException when the tensor is not frozen, the optimizer is closed or an
     *     earlier step failed; nothing changes then
     */
    public void unfreeze() {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            if (!frozen) throw new IllegalStateException("parameter '" + name + "' is not frozen");
            long t = optimizer.appliedSteps();
            stepOffset = t - frozenStepCount;
            frozen = false;
            optimizer.tensorsChanged();
        }
    }

    /**
     * As {@link #unfreeze()}, reading the gradient from {@code newGrad} from now on (for a model that
     * dropped the frozen tensor's gradient): a buffer of this optimizer with the param's length, in
     * any {@link Precision}, backing no other registered tensor, its memory shared with no registered
     * param or grad (it may reuse the old gradient's). The old gradient buffer is released: it backs
     * nothing any more and may be closed or registered elsewhere.
     *
     * @throws IllegalArgumentException for a gradient of another length, of another optimizer, closed,
     *     already registered, or sharing memory; nothing changes then (the tensor stays frozen)
     * @throws IllegalStateException when the tensor is not frozen, the optimizer is closed or an
     *     earlier step failed; nothing changes then
     */
    public void unfreeze(TensorBuffer newGrad) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            if (!frozen) throw new IllegalStateException("parameter '" + name + "' is not frozen");
            AbstractTensorBuffer g = optimizer.ownBuffer("new grad of '" + name + "'", newGrad);
            if (g.length() != param.length()) {
                throw new IllegalArgumentException("frozen parameter '" + name + "' has " + param.length()
                        + " elements but its new grad has " + g.length());
            }
            // Surfaces a device error before anything changes (unfreeze() reads the counter again, then cheaply).
            optimizer.appliedSteps();
            if (g != grad) {
                if (g == param) throw new IllegalArgumentException("param and grad must be different buffers");
                if (g.registeredAs() != null) {
                    throw new IllegalArgumentException("new grad buffer already backs " + g.registeredAs()
                            + "; a buffer can back only one registered tensor");
                }
                String what = "grad of '" + name + "'";
                optimizer.requireUnsharedGradient(what, g, grad);
                optimizer.releaseMemory(grad);
                grad.unmarkRegistered();
                g.markRegistered(what);
                optimizer.claimMemory(what, g);
                grad = g;
            }
            unfreeze();
        }
    }

    /** Whether frozen, without the open check (the optimizer's lock is held). */
    boolean frozen() { return frozen; }

    /** The step offset (while not frozen). */
    long stepOffset() { return stepOffset; }

    /** This tensor's own count when the optimizer's applied-step counter is {@code t}. */
    long ownSteps(long t) {
        return frozen ? frozenStepCount : t - stepOffset;
    }

    /** Sets this tensor's own count ({@code 0 <= ownSteps <= t}) and frozen flag for counter {@code t}. */
    void restoreSteps(long t, long ownSteps, boolean frozenNow) {
        frozen = frozenNow;
        frozenStepCount = frozenNow ? ownSteps : 0;
        stepOffset = frozenNow ? 0 : t - ownSteps;
    }

    AbstractTensorBuffer paramBuffer() { return param; }

    AbstractTensorBuffer masterBuffer() { return master; }

    /** The state buffers in the algorithm's order. */
    Map<StateKind, AbstractTensorBuffer> stateBuffers() { return states; }

    /**
     * This tensor as a kernel sees it: state buffers in the kernel's slot order, the index of its
     * entry in the group table (its group and step offset), its shape, and its index among the
     * step's tensors in registration order.
     */
    TensorOperands operands(StateKind[] slots, int group, int registrationOrder) {
        AbstractTensorBuffer[] slotBuffers = new AbstractTensorBuffer[slots.length];
        for (int i = 0; i < slots.length; i++) slotBuffers[i] = slots[i] == null ? null : states.get(slots[i]);
        return new TensorOperands(param, grad, slotBuffers, master, group, TensorOperands.roundingStream(name), shape(),
                registrationOrder);
    }

    /**
     * One line for a debugger: the name, the length (and shape, when not one-dimensional), the storage formats (the param's, the grad's
     * when it differs, fp32 master weights when kept, 8-bit states), the group, and whether it is frozen.
     */
    @Override
    public String toString() {
        return "Parameter[" + name + ", " + param.length() + " elements" + (dims != null ? " " + java.util.Arrays.toString(dims) : "")
                + ", " + param.precision()
                + (grad.precision() != param.precision() ? " (grad " + grad.precision() + ")" : "")
                + (master != null ? " with fp32 master weights" : "")
                + (states.values().stream().anyMatch(b -> b instanceof io.fusedopt.internal.QuantizedBuffer) ? ", 8-bit states" : "")
                + ", group " + group.index() + (frozen ? ", frozen" : "") + "]";
    }
}
