package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.Check;
import io.fusedopt.internal.LrSegments;
import io.fusedopt.internal.Safetensors;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdatePlan;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parameter tensors that share one configuration (hyper-parameters) within a
 * {@link DeviceOptimizer}. Created by {@link DeviceOptimizer#addGroup}; its methods are serialized
 * with the optimizer's.
 */
public final class ParamGroup {
    private final DeviceOptimizer optimizer;
    private final int index;
    private final List<Parameter> parameters = new ArrayList<>();
    private OptimizerConfig config;
    private UpdatePlan plan;
    /** The learning-rate schedule, or null (the configuration's rate at every step). */
    private LrSchedule schedule;

    ParamGroup(DeviceOptimizer optimizer, int index, OptimizerConfig config) {
        this.optimizer = optimizer;
        this.index = index;
        this.config = config;
        this.plan = UpdatePlan.of(config);
    }

    /** The position of this group in {@link DeviceOptimizer#groups()}. */
    public int index() {
        return index;
    }

    public OptimizerConfig config() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return config;
        }
    }

    /**
     * Replaces this group's hyper-parameters from the next step on (a schedule needs no rebuild).
     * The new configuration must keep the same state tensors: for example AMSGrad, centered
     * RMSProp, RMSProp momentum on/off and the momentum form cannot change once tensors exist.
     */
    public void setConfig(OptimizerConfig newConfig) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            Check.notNull("config", newConfig);
            if (newConfig.getClass() != config.getClass()) {
                throw new IllegalArgumentException("group " + index + " runs " + config.algorithm() + "; a new configuration cannot"
                        + " change its algorithm to " + newConfig.algorithm() + " (its tensors keep that algorithm's states): add"
                        + " a group of the other algorithm instead");
            }
            UpdatePlan newPlan = UpdatePlan.of(newConfig);
            if (newPlan.structure() != plan.structure()) {
                Algorithm<?> algorithm = Algorithms.of(newConfig);
                throw new IllegalArgumentException("the new configuration runs " + algorithm.describeStructure(newPlan.structure())
                        + " per step, but this group runs " + algorithm.describeStructure(plan.structure()) + " (a prepared or"
                        + " captured step's launches depend on it): add a group with the new value instead");
            }
            optimizer.requireRunsHere(newConfig);
            if (!newPlan.sameLayout(plan)) {
                throw new IllegalArgumentException("the new configuration keeps the state tensors "
                        + newConfig.stateKinds() + " with kernel " + newPlan.kernel() + ", but this group keeps "
                        + config.stateKinds() + " with kernel " + plan.kernel() + "; only hyper-parameters may change");
            }
            if (schedule != null) requireScheduleFits(schedule, newConfig);
            config = newConfig;
            plan = newPlan;
            optimizer.groupChanged();
        }
    }

    /**
     * Sets this group's learning-rate schedule, from the next step on: the step with counter t
     * uses {@code float32(lr * schedule.factorAt(n))}, where {@code lr} is the configuration's
     * rate (which {@link #setLearningRate} still changes, for example from a
     * {@link ReduceLrOnPlateau}) and n counts the optimizer's steps before this one, not the steps
     * since it was set: {@code t - 1} applied steps, plus the skipped ones with
     * {@link ScheduleClock#ITERATIONS} ({@link DeviceOptimizer.Builder#optScheduleClock}). Null
     * removes it. On CUDA the finalize kernel evaluates it on the device, so a captured step
     * follows it. {@link DeviceOptimizer#setSchedule} sets one on every group.
     *
     * @throws IllegalArgumentException when the schedule would take this group's rate beyond
     *     float32's range; the group is unchanged then
     */
    public void setSchedule(LrSchedule newSchedule) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            if (newSchedule != null) requireScheduleFits(newSchedule, config);
            schedule = newSchedule;
            optimizer.groupChanged();
        }
    }

    /** The learning-rate schedule, if any. */
    public java.util.Optional<LrSchedule> schedule() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return java.util.Optional.ofNullable(schedule);
        }
    }

    /**
     * The learning rate the next step uses for this group, as the float32 the kernels use: the
     * configuration's rate ({@link OptimizerConfig#learningRate()}) times the schedule's factor at
     * the next scheduler step; PyTorch's {@code param_group["lr"]} after {@code scheduler.step()}.
     * All groups at once: {@link DeviceOptimizer#lastLearningRates()}. Waits for the device where
     * {@link DeviceOptimizer#stepCount()} does.
     */
    public float learningRate() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return scheduledLearningRate(optimizer.nextSchedulerStep());
        }
    }

    /** The rate this group uses at scheduler step {@code n} (the optimizer's lock is held). */
    float scheduledLearningRate(long n) {
        return LrSegments.scheduledLr((float) config.learningRate(), schedule == null ? null : schedule.segments(), n);
    }

    /** Refuses a schedule that would take {@code withConfig}'s rate beyond float32's range. */
    void requireScheduleFits(LrSchedule candidate, OptimizerConfig withConfig) {
        candidate.segments().requireFiniteWith(withConfig.learningRate(), "group " + index);
    }

    /** The schedule, without the open check (the optimizer's lock is held); null when none. */
    LrSchedule currentSchedule() {
        return schedule;
    }

    /** Sets a schedule validated by the caller (a checkpoint restore). */
    void restoreSchedule(LrSchedule restored) {
        schedule = restored;
        optimizer.groupChanged();
    }

    /**
     * Shorthand for {@code setConfig(config().withLearningRate(learningRate))}.
     *
     * @throws IllegalArgumentException when the rate, as the float32 the kernels use, is not finite
     *     and >= 0, or when a non-zero rate rounds to 0 in float32, or when this group's schedule
     *     would take it beyond float32's range; the group is unchanged then
     */
    public void setLearningRate(double learningRate) {
        synchronized (optimizer) {
            setConfig(config().withLearningRate(learningRate));
        }
    }

    /** The parameters in the order they were added. */
    public List<Parameter> parameters() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return List.copyOf(parameters);
        }
    }

    /**
     * Registers a tensor: {@code param} is updated in place from {@code grad} at every step. Both
     * must come from this optimizer (allocated or wrapped), have the same length, and not back any
     * other registered tensor; each may be stored in any {@link Precision}. The state tensors are
     * allocated here (in the optimizer's state precision), set to their initial values; a 16-bit
     * param also gets fp32 master weights, copied from it, unless the optimizer was built without.
     * A tensor may be added at any time: added after k applied steps, it takes its own step 1 at
     * the next step (its bias corrections and first-step rule are those of a fresh optimizer's
     * first step; see {@link Parameter#stepCount()}), while this group's learning-rate schedule
     * keeps following the optimizer's counter. Adding a tensor after a step ends the use of earlier
     * {@link StepGraph captures} (capture again) and waits for queued steps on CUDA.
     *
     * <p>Memory may be wrapped more than once (reading it twice is harmless), but it may back only
     * one registered param or grad: a param or grad whose memory overlaps a registered one, or its
     * own grad or param, is refused (the same {@code float[]} wrapped twice, overlapping
     * {@code FloatBuffer} slices, overlapping device ranges), since a step would update those bytes
     * twice. A {@code FloatBuffer} view of a heap {@code ByteBuffer} cannot be located and is not
     * checked.
     *
     * @throws IllegalArgumentException for a bad name (null, blank, taken, or longer than
     *     {@link Parameter#MAX_NAME_LENGTH}) or buffer, or memory shared with another
     *     registered tensor (the message names both); nothing is registered then
     * @throws IllegalStateException once the optimizer is closed or a step failed
     * @throws OutOfMemoryError or {@link CudaException} when the states do not fit; whatever this
     *     call allocated is freed first, so the optimizer is as it was
     */
    public Parameter add(String name, TensorBuffer param, TensorBuffer grad) {
        return add(name, param, grad, (long[]) null);
    }

    /**
     * {@link #add(String, TensorBuffer, TensorBuffer)} with the tensor's shape (a weight matrix of
     * {@code rows x cols}: {@code add(name, w, dw, rows, cols)}), whose product must be the
     * buffers' length; at most {@value io.fusedopt.internal.Safetensors#MAX_RANK} dimensions, each
     * at least 0. The elements lie in row-major order. {@link Parameter#shape()} returns it,
     * checkpoints record it and a load checks it.
     *
     * @throws IllegalArgumentException as {@link #add(String, TensorBuffer, TensorBuffer)}, and for
     *     a shape whose product is not the length (or overflows), of rank above the maximum, or with
     *     a negative dimension; nothing is registered then
     */
    public Parameter add(String name, TensorBuffer param, TensorBuffer grad, long... shape) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            AbstractTensorBuffer p = optimizer.ownBuffer("param", param);
            AbstractTensorBuffer g = optimizer.ownBuffer("grad", grad);
            long[] dims = checkedTensor(name, p, g, shape);
            requireUnregistered("param", p);
            requireUnregistered("grad", g);
            optimizer.requireUnsharedMemory("param '" + name + "'", p, "grad of '" + name + "'", g);
            // Read before anything is allocated: on CUDA it may wait for queued steps, and it may fail.
            long appliedSteps = optimizer.appliedSteps();
            optimizer.claimName(name);
            Map<StateKind, AbstractTensorBuffer> states = new LinkedHashMap<>(); // in the algorithm's order for this shape
            AbstractTensorBuffer master = null;
            try {
                boolean quantized = optimizer.quantizesStatesOf(config, p.length());
                long[] paramShape = dims == null ? new long[] {p.length()} : dims;
                for (StateKind kind : UpdatePlan.stateKinds(config, paramShape)) {
                    float initialValue = UpdatePlan.initialValue(config, kind);
                    long length = elements(UpdatePlan.stateShape(config, kind, paramShape));
                    states.put(kind, quantized ? optimizer.allocateQuantizedForRegistration(length, kind, initialValue)
                            : optimizer.allocateForRegistration(length, optimizer.statePrecision(), initialValue));
                }
                if (p.precision() != Precision.FP32 && optimizer.usesMasterWeights()) {
                    master = optimizer.allocateForRegistration(p.length(), Precision.FP32, 0f);
                    copyWidened(p, master);
                }
            } catch (RuntimeException | Error e) {
                // Running out of memory is an Error on the CPU backends (the heap) and a CudaException on
                // CUDA; either way the states allocated so far must not stay allocated until close().
                states.values().forEach(AbstractTensorBuffer::close);
                if (master != null) master.close();
                optimizer.releaseName(name);
                throw e;
            }
            p.markRegistered("param '" + name + "'");
            g.markRegistered("grad of '" + name + "'");
            states.forEach((kind, s) -> s.markRegistered(kind.stateName() + " of '" + name + "'"));
            if (master != null) master.markRegistered("master weights of '" + name + "'");
            optimizer.claimMemory("param '" + name + "'", p);
            optimizer.claimMemory("grad of '" + name + "'", g);
            Parameter parameter = new Parameter(optimizer, this, name, p, g, states, master, dims);
            parameter.restoreSteps(appliedSteps, 0, false); // its own step 1 is the optimizer's next step
            parameters.add(parameter);
            optimizer.registered(parameter);
            optimizer.tensorsChanged();
            return parameter;
        }
    }

    /** The number of elements of a tensor of this (checked) shape. */
    private static long elements(long[] shape) {
        long product = 1;
        for (long d : shape) product *= d;
        return product;
    }

    /**
     * The checks of {@link #add(String, TensorBuffer, TensorBuffer, long...)} that need neither the
     * buffers' memory nor the optimizer's registrations: param and grad different buffers of one
     * length, 16-bit params under stochastic rounding, the shape against the length and against the
     * group's algorithm. Returns the checked dims ({@link #checkedDims}). A sharded optimizer runs
     * them on every rank, so that the ranks that do not own a tensor refuse it as its owner does.
     */
    long[] checkedTensor(String name, TensorBuffer param, TensorBuffer grad, long[] shape) {
        if (param == grad) throw new IllegalArgumentException("param and grad must be different buffers");
        if (optimizer.stochasticRoundingSeed().isPresent() && param.precision() == Precision.FP32) {
            throw new IllegalArgumentException("param '" + name + "' is FP32, but this optimizer rounds params stochastically"
                    + " (optStochasticRounding), which is for BF16 or FP16 params: allocate it in a 16-bit format, or use"
                    + " another optimizer for FP32 params");
        }
        if (param.length() != grad.length()) {
            throw new IllegalArgumentException("param '" + name + "' has " + param.length() + " elements but its grad has "
                    + grad.length());
        }
        long[] dims = checkedDims(name, shape, param.length());
        Algorithms.of(config).requireSupportedShape(name, dims == null ? new long[] {param.length()} : dims);
        return dims;
    }

    /**
     * {@code shape} checked against {@code length}: null for no shape or a one-dimensional one
     * (kept as the length), else a copy.
     */
    static long[] checkedDims(String name, long[] shape, long length) {
        if (shape == null) return null;
        if (shape.length > Safetensors.MAX_RANK) {
            throw new IllegalArgumentException("param '" + name + "' has shape " + Arrays.toString(shape) + " of rank " + shape.length
                    + "; at most " + Safetensors.MAX_RANK + " dimensions");
        }
        long product = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("param '" + name + "' has shape " + Arrays.toString(shape) + ": dimensions are >= 0");
            try {
                product = Math.multiplyExact(product, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("param '" + name + "' has shape " + Arrays.toString(shape) + ", more elements than a long holds");
            }
        }
        if (product != length) {
            throw new IllegalArgumentException("param '" + name + "' has shape " + Arrays.toString(shape) + " of " + product
                    + " elements, but its buffers hold " + length);
        }
        return shape.length == 1 ? null : shape.clone();
    }

    /**
     * Registers two Java arrays as a tensor on the CPU backends: shorthand for
     * {@code add(name, optimizer.wrapHost(param), optimizer.wrapHost(grad))}. The arrays are used
     * in place, not copied: each step reads {@code grad} and updates {@code param}, so your code
     * keeps writing gradients into the one and reading the weights from the other (read them
     * between steps; {@link DeviceOptimizer} explains the threads). An array may back only one
     * registered param or grad.
     *
     * @throws UnsupportedOperationException on {@link Backend#CUDA}, whose kernels update device
     *     memory only; nothing is registered then
     * @throws IllegalArgumentException as {@link #add(String, TensorBuffer, TensorBuffer)}, and for
     *     a null array; nothing is registered then
     */
    public Parameter add(String name, float[] param, float[] grad) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            Check.notNull("param array", param);
            Check.notNull("grad array", grad);
            if (optimizer.backend() == Backend.CUDA) {
                throw new UnsupportedOperationException("add(name, float[], float[]) registers Java arrays, updated in place, which"
                        + " only the CPU backends can do; this optimizer runs on CUDA: allocate device buffers (allocate(n)), copy"
                        + " the arrays in (TensorBuffer.copyFrom) and register those, or wrap device memory you own"
                        + " (wrapDevicePointer)");
            }
            return add(name, optimizer.wrapHost(param), optimizer.wrapHost(grad));
        }
    }

    /** Copies a 16-bit param into its fp32 master (exact), one block at a time. */
    private static void copyWidened(AbstractTensorBuffer from, AbstractTensorBuffer to) {
        float[] block = new float[(int) Math.min(from.length(), 1 << 20)];
        for (long offset = 0; offset < from.length(); offset += block.length) {
            int n = (int) Math.min(block.length, from.length() - offset);
            from.copyTo(offset, block, 0, n);
            to.copyFrom(block, 0, offset, n);
        }
    }

    private static void requireUnregistered(String role, AbstractTensorBuffer buffer) {
        if (buffer.registeredAs() != null) {
            throw new IllegalArgumentException(role + " buffer already backs " + buffer.registeredAs()
                    + "; a buffer can back only one registered tensor");
        }
    }

    /** The configuration, without the open check (the optimizer's lock is held). */
    OptimizerConfig currentConfig() {
        return config;
    }

    /** Sets a configuration of the same layout, validated by the caller (a checkpoint restore). */
    void restoreConfig(OptimizerConfig restored) {
        config = restored;
        plan = UpdatePlan.of(restored);
        optimizer.groupChanged();
    }

    /** The kernel this group's tensors run, and its state slots. */
    UpdatePlan plan() {
        return plan;
    }

    /** The current configuration as the step's hyper-parameter table holds it. */
    float[] hyperParameters() {
        return StepScalars.hyperParameters(config);
    }

    List<Parameter> parameterList() {
        return parameters;
    }

    /**
     * One line for a debugger: the index, the configuration, the learning rate the next step uses
     * ({@link #learningRate()}; where reading it would wait for the device, the configuration's rate
     * and that the schedule applies), the schedule, and the number of tensors.
     */
    @Override
    public String toString() {
        synchronized (optimizer) {
            java.util.OptionalLong n = optimizer.nextSchedulerStepWithoutWaiting();
            String rate = schedule == null ? "lr " + (float) config.learningRate()
                    : n.isPresent() ? "lr " + scheduledLearningRate(n.getAsLong()) + " (scheduled)"
                    : "lr " + (float) config.learningRate() + " times the schedule's factor at the device's step";
            return "ParamGroup[" + index + ", " + config + ", " + rate + (schedule == null ? "" : ", " + schedule) + ", "
                    + parameters.size() + (parameters.size() == 1 ? " tensor" : " tensors") + "]";
        }
    }
}
