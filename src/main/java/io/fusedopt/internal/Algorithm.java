package io.fusedopt.internal;

import io.fusedopt.OptimizerConfig;
import io.fusedopt.StateKind;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything fusedopt knows about one algorithm besides its public configuration class: how a
 * configuration runs ({@link #plan}: kernel, state slots, flags), the float32 hyper-parameters its
 * per-step scalars start from, the value its state starts at, and the named variants that tests,
 * the command line and the benchmarks run. Its kernels ({@link UpdateKernel}) hold the arithmetic.
 * One subclass per configuration class, registered once in {@link Algorithms}; the CUDA side of
 * the same algorithm is {@code kernels/FAMILY.cu}.
 *
 * @param <C> the configuration class
 */
public abstract class Algorithm<C extends OptimizerConfig> {
    private final Class<C> configType;

    protected Algorithm(Class<C> configType) {
        this.configType = configType;
    }

    /** The public configuration class this algorithm runs. */
    public final Class<C> configType() {
        return configType;
    }

    /** The name checkpoints record as the configuration's type: the configuration class's simple name. */
    public final String typeName() {
        return configType.getSimpleName();
    }

    /** Every kernel a configuration of this algorithm may run. */
    public abstract List<UpdateKernel> kernels();

    /** How {@code config} runs: its kernel, which state sits in each slot, its step-independent flags. */
    public abstract UpdatePlan plan(C config);

    /**
     * Writes the algorithm's own float32 hyper-parameters into {@code h} from index
     * {@link StepScalars#H_FIRST_OWN}; the learning rate and weight decay are already in place.
     */
    protected abstract void ownHyperParameters(C config, float[] h);

    /** The weight decay coefficient (every algorithm has one; 0 when off). */
    protected abstract double weightDecay(C config);

    /**
     * Whether this algorithm keeps 8-bit blockwise states under
     * {@link io.fusedopt.StateQuantization#BLOCKWISE_8BIT} (those bitsandbytes has 8-bit forms of);
     * each of its states then uses {@link BlockwiseQuantization#mapFor}'s map.
     */
    public boolean hasQuantizedStates() {
        return false;
    }

    /**
     * Whether this algorithm sees each parameter as a matrix (its kernel is a {@link MatrixKernel}):
     * its parameters are registered with a shape of two dimensions, and the suites over every
     * variant give its tensors one ({@link #exampleShape}).
     */
    public boolean takesMatrices() {
        return false;
    }

    /**
     * Refuses a parameter named {@code name} of {@code shape} ({@code [length]} when registered
     * without one) that this algorithm cannot update, with a message naming both; every shape by
     * default.
     *
     * @throws IllegalArgumentException for a shape this algorithm refuses
     */
    public void requireSupportedShape(String name, long[] shape) {
    }

    /**
     * Why {@code config} cannot run on {@code engine}, in one sentence, or null when it can (every
     * configuration everywhere by default; Muon's fast mode needs cuBLAS).
     */
    protected String unavailableReason(C config, Engine engine) {
        return null;
    }

    /**
     * Refuses a configuration that cannot run on {@code engine}, with {@link #unavailableReason}.
     *
     * @throws IllegalArgumentException when it cannot
     */
    public final void requireRunsOn(OptimizerConfig config, Engine engine) {
        String reason = unavailableReason(configType.cast(config), engine);
        if (reason != null) throw new IllegalArgumentException(reason);
    }

    /**
     * What a plan's {@link UpdatePlan#structure} means, for messages that refuse a change of it
     * (Muon: the Newton-Schulz step count and numerics).
     */
    public String describeStructure(int structure) {
        return "launch structure " + structure;
    }

    /**
     * The configuration a group of {@code current} resumes with from a checkpoint that saved
     * {@code saved}: {@code saved}, unless the algorithm keeps a choice of how the update is
     * computed on this optimizer (Muon keeps the group's {@link io.fusedopt.Muon.Numerics}: a run
     * saved in fast mode on a GPU resumes in exact mode on a CPU).
     */
    protected C resumedConfig(C saved, C current) {
        return saved;
    }

    /** {@link #resumedConfig} of configurations known to be of this algorithm. */
    public final OptimizerConfig resumedConfigOf(OptimizerConfig saved, OptimizerConfig current) {
        return resumedConfig(configType.cast(saved), configType.cast(current));
    }

    /**
     * The shape the command line's self-test and the suites over every variant give a tensor of
     * {@code length} elements: {@code [length]}, or for an algorithm that {@link #takesMatrices} the
     * matrix {@code [r, length / r]} with r the largest divisor of {@code length} at most its square
     * root (1 x length for a prime), the most nearly square one.
     */
    public final long[] exampleShape(long length) {
        if (!takesMatrices()) return new long[] {length};
        long rows = Math.max(1, (long) Math.sqrt((double) length));
        while (rows > 1 && length % rows != 0) rows--;
        return new long[] {rows, length == 0 ? 0 : length / rows};
    }

    /**
     * The state tensors a parameter of shape {@code shape} keeps under {@code config}, in a fixed
     * order: {@link OptimizerConfig#stateKinds()}, unless the algorithm keeps other states for
     * tensors of other ranks (Adafactor: two factors for a tensor of rank &gt;= 2, one per-element
     * state for a vector). The plan's slots name every state any shape keeps; a parameter's
     * missing ones are null slots.
     */
    public List<StateKind> stateKinds(C config, long[] shape) {
        return config.stateKinds();
    }

    /**
     * The shape of the state {@code kind} of a parameter of shape {@code shape} (its length is the
     * product of the dimensions): the parameter's own for a per-element state. Checkpoints record
     * it, and a load checks it.
     */
    public long[] stateShape(StateKind kind, long[] shape) {
        return shape;
    }

    /** The value a state tensor of {@code config} starts at (0 unless the algorithm says otherwise). */
    public float initialValue(C config, StateKind kind) {
        return 0f;
    }

    /**
     * Named variants covering every kernel, flag and state layout of this algorithm (names are
     * lower case, start with the algorithm's name, unique across algorithms): the command line's
     * self-test and variant lists, the vector-path test and the equivalence tests run them all.
     */
    public abstract Map<String, C> variants();

    /**
     * The configurations {@code bench} and the JMH benchmarks measure, by name ("adam", "adamw"):
     * each with its defaults, so that the numbers compare with other libraries' defaults.
     */
    public abstract Map<String, C> benchmarkConfigs();

    /**
     * The {@code torch.optim} optimizer that runs {@code config}'s update (PyTorch's class name and
     * every hyper-parameter as its keyword argument), or empty where PyTorch has no such optimizer.
     * The PyTorch comparisons (benchmarks/torch_optim.py, benchmarks/gpu/torch_side_by_side.py) take
     * their settings from it.
     */
    public Optional<TorchOptimizer> torchEquivalent(C config) {
        return Optional.empty();
    }

    /** The problems of the command line's demo (io.fusedopt.cli.Demo). */
    public enum DemoProblem {
        /** Paths on the narrow valley f(x, y) = x^2/20 + y^2 from (-7, 2). */
        NARROW_VALLEY,
        /** A 2-32-3 perceptron trained on three interleaved spirals, full batch. */
        SPIRALS
    }

    /**
     * The configurations the demo runs on {@code problem}, by the label its charts and report show
     * ("Adam (lr 0.3)"), each with a learning rate tuned for the problem; empty: the algorithm is
     * not in the demo.
     */
    public Map<String, C> demoConfigs(DemoProblem problem) {
        return Map.of();
    }

    /**
     * The year the algorithm was published: the demo draws the algorithms in that order (ties in
     * registration order), so a chart reads as the history of the idea. Unknown: last.
     */
    public int publicationYear() {
        return Integer.MAX_VALUE;
    }

    /** {@link #torchEquivalent} of a configuration known to be of this algorithm. */
    final Optional<TorchOptimizer> torchEquivalentOf(OptimizerConfig config) {
        return torchEquivalent(configType.cast(config));
    }

    /** {@link #plan} of a configuration known to be of this algorithm. */
    final UpdatePlan planOf(OptimizerConfig config) {
        return plan(configType.cast(config));
    }

    /** The hyper-parameter row of a configuration of this algorithm ({@link StepScalars#hyperParameters}). */
    final float[] hyperParametersOf(OptimizerConfig config) {
        C c = configType.cast(config);
        float[] h = new float[StepScalars.HYPER_STRIDE];
        h[StepScalars.H_LR] = (float) c.learningRate();
        h[StepScalars.H_WEIGHT_DECAY] = (float) weightDecay(c);
        ownHyperParameters(c, h);
        return h;
    }

    final List<StateKind> stateKindsOf(OptimizerConfig config, long[] shape) {
        return stateKinds(configType.cast(config), shape);
    }

    final float initialValueOf(OptimizerConfig config, StateKind kind) {
        return initialValue(configType.cast(config), kind);
    }
}
