package io.fusedopt.djl;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.util.Pair;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.SaveOptions;
import io.fusedopt.TensorBuffer;
import io.fusedopt.internal.MemoryRange;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;

/**
 * A DJL {@link Optimizer} backed by fusedopt: any fusedopt configuration (RMSProp, Adagrad, Lion,
 * LAMB, Muon, ... which DJL's PyTorch engine lacks), parameter groups chosen by parameter name,
 * and fusedopt's schedules, global-norm clipping and loss scaling, in one fused step over every
 * parameter. A DJL training loop changes one line:
 *
 * <pre>{@code
 * TrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss())
 *         .optOptimizer(FusedOptimizer.builder(block, RmsProp.builder().optLearningRate(1e-3).build()).build());
 * }</pre>
 *
 * <p><b>One fused step per DJL step.</b> DJL's {@code Trainer.step()} calls {@link #update} once per
 * parameter, after the backward pass has computed every gradient. At the first call of a step this
 * optimizer updates every parameter of the block at once (one fusedopt step), then zeroes the
 * gradients as DJL's own optimizers do; the other calls of that step only count. That is safe because DJL calls them all from one {@code step()}, each
 * parameter once, with no forward or backward pass between them; it is not when the block's
 * parameters live on several devices (DJL then calls {@code update} once per device: refused), or
 * when code outside {@code Trainer.step()} calls {@code update} for some parameters only (the next
 * call of an already updated parameter is refused). A parameter that DJL stops updating (frozen:
 * {@code requiresGradient()} false), changes shape, is given a new array, or is not float32 is
 * refused at the next step's first call, naming it, before anything is updated.
 *
 * <p><b>No copies on the CPU.</b> A float32 parameter and its gradient on the CPU are updated in
 * place: fusedopt wraps the memory of DJL's arrays ({@code NDArray.toByteBuffer(true)}, a direct
 * buffer over a contiguous PyTorch tensor; {@code FusedOptimizerTest} checks that it aliases).
 * Where an array cannot be wrapped (a GPU array: DJL exposes no device pointer), each step copies
 * the gradient in and the updated parameter out, 8 bytes per float32 parameter each way.
 *
 * <p>The fusedopt optimizer ({@link #fusedOptimizer()}) holds the states; {@link #save} and
 * {@link #load} keep them beside DJL's own model file (which holds the weights), by parameter
 * name, so a run resumes exactly.
 * DJL's own options of {@code Optimizer.OptimizerBuilder} (rescaleGrad, clipGrad, weightDecays)
 * are refused: fusedopt's configurations and {@link Builder#optOptions} say them.
 */
public final class FusedOptimizer extends Optimizer implements AutoCloseable {
    private final Block block;
    private final DeviceOptimizer optimizer;
    private final List<Map.Entry<Predicate<String>, OptimizerConfig>> groupRules;
    private final OptimizerConfig defaults;
    /** The block's parameters fusedopt updates, by DJL parameter id; empty until the first update. */
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Set<String> updatedThisStep = new HashSet<>();
    private boolean registered;
    /** A state to load once the parameters are registered (load before the first step). */
    private Path pendingLoad;

    /** One DJL parameter as fusedopt sees it: its array, gradient and fusedopt's buffers (wrapping theirs, or copies). */
    private record Tensor(String name, Parameter parameter, NDArray weight, TensorBuffer param, TensorBuffer gradient,
                          MemoryRange weightMemory, MemoryRange gradMemory) {
        /** Whether the arrays are copied in and out each step (their memory could not be wrapped). */
        boolean copied() {
            return weightMemory == null;
        }
    }

    private FusedOptimizer(Builder builder) {
        super(builder);
        if (rescaleGrad != 1f || clipGrad >= 0f || getWeightDecay() != 0f) {
            throw new IllegalArgumentException("DJL's rescaleGrad, clipGrad and weightDecays are not fusedopt's: set weight decay"
                    + " in the fusedopt configuration and clipping with optOptions(b -> b.optMaxGradNorm(...))");
        }
        this.block = builder.block;
        this.defaults = builder.defaults;
        this.groupRules = List.copyOf(builder.groupRules);
        this.optimizer = builder.options.apply(DeviceOptimizer.builder(builder.defaults).optBackend(builder.backend)).build();
    }

    /**
     * A builder for the optimizer of {@code block}'s parameters, in groups of {@code defaults}
     * unless {@link Builder#optGroup} says otherwise.
     */
    public static Builder builder(Block block, OptimizerConfig defaults) {
        return new Builder(block, defaults);
    }

    /** The fusedopt optimizer that holds the states (for its step report, schedules, loss scale). */
    public DeviceOptimizer fusedOptimizer() {
        return optimizer;
    }

    /**
     * DJL's per-parameter call: the first of a step runs the fused step over every parameter.
     *
     * @throws IllegalArgumentException for a parameter of another block, a float64 or integer one
     * @throws IllegalStateException for a parameter updated twice in a step, on another device,
     *     frozen, reshaped or given a new array since the last step (nothing was updated then)
     */
    @Override
    public synchronized void update(String parameterId, NDArray weight, NDArray grad) {
        if (!registered) {
            register();
            if (pendingLoad != null) {
                Path file = pendingLoad;
                pendingLoad = null;
                try {
                    optimizer.load(file);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException("loading the optimizer state " + file + " at the first step", e);
                }
            }
        }
        Tensor t = tensors.get(parameterId);
        if (t == null) {
            throw new IllegalArgumentException("DJL updates parameter " + parameterId + ", which is not a parameter of the block"
                    + " this FusedOptimizer was built for (or one that does not require a gradient)");
        }
        if (!weight.getDevice().equals(t.weight().getDevice())) {
            throw new IllegalStateException("parameter '" + t.name() + "' comes on " + weight.getDevice() + " besides "
                    + t.weight().getDevice() + ": DJL calls once per device when the block lives on several; FusedOptimizer takes one");
        }
        if (updatedThisStep.isEmpty()) step();
        if (!updatedThisStep.add(parameterId)) {
            throw new IllegalStateException("parameter '" + t.name() + "' was updated twice in one step: some parameters were not"
                    + " updated in the last step (update called outside Trainer.step()?)");
        }
        if (updatedThisStep.size() == tensors.size()) updatedThisStep.clear();
    }

    /** Checks every parameter, then copies gradients in where they are not wrapped, steps, and copies params out. */
    private void step() {
        for (Tensor t : tensors.values()) {
            Parameter p = t.parameter();
            if (!p.requiresGradient()) {
                throw new IllegalStateException("parameter '" + t.name() + "' no longer requires a gradient (frozen): FusedOptimizer"
                        + " updates every parameter it was built with in one step; build a new one for the new set");
            }
            NDArray weight = p.getArray();
            if (weight.size() != t.param().length()) {
                throw new IllegalStateException("parameter '" + t.name() + "' changed shape to " + weight.getShape() + " (it had "
                        + t.param().length() + " elements): build a new FusedOptimizer for the new shapes");
            }
            if (t.copied()) continue;
            boolean sameMemory = t.weightMemory().equals(memoryOf(weight));
            if (sameMemory) { // a new array would have no gradient (getGradient throws)
                try (NDArray grad = weight.getGradient()) { // a new array of the parameters' manager at each call: closed here
                    sameMemory = t.gradMemory().equals(memoryOf(grad));
                }
            }
            if (!sameMemory) {
                throw new IllegalStateException("parameter '" + t.name() + "' or its gradient lies in other memory than at the first"
                        + " step: FusedOptimizer updates the memory it registered; build a new one");
            }
        }
        for (Tensor t : tensors.values()) {
            if (!t.copied()) continue;
            try (NDArray grad = t.parameter().getArray().getGradient()) {
                t.gradient().copyFrom(grad.toFloatArray());
            }
        }
        optimizer.step();
        // DJL's own optimizers zero the gradient they applied (DJL's PyTorch engine accumulates
        // gradients across backward passes otherwise; FusedOptimizerTest checks that Adam's does).
        optimizer.zeroGrad();
        for (Tensor t : tensors.values()) {
            if (!t.copied()) continue;
            NDArray weight = t.parameter().getArray();
            weight.set(t.param().toArray());
            try (NDArray grad = weight.getGradient()) {
                grad.subi(grad);
            }
        }
    }

    /** Every parameter of the block that requires a gradient, in the block's order, in its group. */
    private void register() {
        Map<Integer, ParamGroup> groups = new LinkedHashMap<>();
        for (Pair<String, Parameter> pair : block.getParameters()) {
            String name = pair.getKey();
            Parameter p = pair.getValue();
            if (!p.requiresGradient()) continue;
            if (!p.isInitialized()) throw new IllegalStateException("parameter '" + name + "' is not initialized: initialize the block first");
            NDArray weight = p.getArray();
            if (weight.getDataType() != DataType.FLOAT32) {
                throw new IllegalArgumentException("parameter '" + name + "' is " + weight.getDataType() + ": fusedopt updates float32"
                        + " parameters (cast the block with block.cast(DataType.FLOAT32))");
            }
            int rule = groupRules.size();
            for (int i = 0; i < groupRules.size(); i++) {
                if (groupRules.get(i).getKey().test(name)) {
                    rule = i;
                    break;
                }
            }
            OptimizerConfig config = rule < groupRules.size() ? groupRules.get(rule).getValue() : defaults;
            ParamGroup group = groups.computeIfAbsent(rule, r -> optimizer.addGroup(config));
            FloatBuffer weightMemory = aliasable(weight);
            FloatBuffer gradMemory = aliasable(weight.getGradient()); // kept open: the optimizer wraps its memory
            MemoryRange weightRange = weightMemory == null ? null : MemoryRange.of(weightMemory);
            MemoryRange gradRange = gradMemory == null ? null : MemoryRange.of(gradMemory);
            boolean copied = weightRange == null || gradRange == null;
            TensorBuffer param, gradient;
            if (copied) {
                param = optimizer.allocate(weight.size());
                param.copyFrom(weight.toFloatArray());
                gradient = optimizer.allocate(weight.size());
            } else {
                param = optimizer.wrapHost(weightMemory);
                gradient = optimizer.wrapHost(gradMemory);
            }
            long[] shape = weight.getShape().getShape();
            group.add(name, param, gradient, shape.length == 0 ? new long[] {1} : shape);
            tensors.put(p.getId(), new Tensor(name, p, weight, param, gradient, copied ? null : weightRange, copied ? null : gradRange));
        }
        registered = true;
    }

    /** Where a CPU array's memory lies (null when it cannot be wrapped). */
    private static MemoryRange memoryOf(NDArray array) {
        FloatBuffer memory = aliasable(array);
        return memory == null ? null : MemoryRange.of(memory);
    }

    /** The memory of a float32 CPU array as a direct buffer over it, or null where it cannot be wrapped. */
    private static FloatBuffer aliasable(NDArray array) {
        if (!array.getDevice().equals(Device.cpu()) || array.getDataType() != DataType.FLOAT32) return null;
        java.nio.ByteBuffer bytes = array.toByteBuffer(true);
        if (!bytes.isDirect()) return null;
        return bytes.order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /**
     * Saves fusedopt's state (states, step counts, schedules, loss scale) by parameter name, without
     * the params: DJL's model file ({@code model.save}) holds those. Save both after the same step.
     *
     * @throws IllegalStateException before the first step (nothing to save yet)
     */
    public synchronized void save(Path file) throws IOException {
        if (!registered) throw new IllegalStateException("no step was taken yet: there is no optimizer state to save");
        optimizer.save(file, SaveOptions.builder().optIncludeParams(false).build());
    }

    /**
     * Loads a state saved by {@link #save}, into a new run whose model was loaded from the DJL model
     * file of the same step. Before the first step, the parameters are not registered yet (their
     * gradients exist only after the first backward pass): the file is read when they are, at the
     * first {@link #update}, before that step, and a problem with it is thrown from there.
     *
     * @throws io.fusedopt.CheckpointException naming the problem; nothing has changed then
     */
    public synchronized void load(Path file) throws IOException {
        if (file == null) throw new IllegalArgumentException("file must not be null");
        if (!registered) {
            pendingLoad = file;
            return;
        }
        optimizer.load(file);
    }

    /** Frees fusedopt's states (not DJL's arrays). */
    @Override
    public synchronized void close() {
        optimizer.close();
    }

    /** Builds a {@link FusedOptimizer}: the block and the default configuration are required, the rest optional. */
    public static final class Builder extends OptimizerBuilder<Builder> {
        private final Block block;
        private final OptimizerConfig defaults;
        private final List<Map.Entry<Predicate<String>, OptimizerConfig>> groupRules = new ArrayList<>();
        private Backend backend = Backend.CPU_FAST;
        private UnaryOperator<DeviceOptimizer.Builder> options = b -> b;

        private Builder(Block block, OptimizerConfig defaults) {
            if (block == null) throw new IllegalArgumentException("block must not be null");
            if (defaults == null) throw new IllegalArgumentException("defaults must not be null");
            this.block = block;
            this.defaults = defaults;
        }

        /**
         * Puts the parameters whose names {@code names} accepts in a group of {@code config} (no
         * weight decay on biases and norms: {@code optGroup(n -> n.endsWith("bias"), adamWithoutDecay)});
         * the first matching rule wins, the others go to the default group.
         */
        public Builder optGroup(Predicate<String> names, OptimizerConfig config) {
            if (names == null || config == null) throw new IllegalArgumentException("names and config must not be null");
            groupRules.add(Map.entry(names, config));
            return this;
        }

        /** The backend (default {@link Backend#CPU_FAST}). */
        public Builder optBackend(Backend v) {
            if (v == null) throw new IllegalArgumentException("backend must not be null");
            backend = v;
            return this;
        }

        /** fusedopt's own options: clipping, loss scaling, non-finite policy, state precision, schedules at build. */
        public Builder optOptions(UnaryOperator<DeviceOptimizer.Builder> v) {
            if (v == null) throw new IllegalArgumentException("options must not be null");
            options = v;
            return this;
        }

        @Override
        protected Builder self() {
            return this;
        }

        /** The optimizer; its fusedopt optimizer is built now, its parameters registered at the first update. */
        public FusedOptimizer build() {
            return new FusedOptimizer(this);
        }
    }
}
