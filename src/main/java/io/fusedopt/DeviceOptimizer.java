package io.fusedopt;

import io.fusedopt.cpu.CpuEngine;
import io.fusedopt.cpu.FastCpuEngine;
import io.fusedopt.cuda.CudaEngine;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.Check;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.MemoryRange;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepProgram;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.UpdateKernel;
import java.lang.System.Logger.Level;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Runs one optimizer algorithm over parameter tensors registered in groups, on a CUDA device, on
 * the fast CPU backend or on the CPU reference backend (see {@link Backend}).
 *
 * <pre>{@code
 * Adam adam = Adam.adamW().optLearningRate(1e-3).build();
 * try (DeviceOptimizer opt = DeviceOptimizer.builder(adam).optBackend(Backend.AUTO).build()) {
 *     TensorBuffer w = opt.allocate(n), dw = opt.allocate(n);
 *     w.copyFrom(initialWeights);
 *     ParamGroup decayed = opt.addGroup();                                   // the defaults
 *     ParamGroup biases = opt.addGroup(adam.toBuilder().optWeightDecay(0).build());
 *     decayed.add("layer1.weight", w, dw);
 *     for (...) { computeGradients(dw); opt.step(); }
 * }
 * }</pre>
 *
 * <p><b>Steps.</b> The step counter starts at 0 and each applied step makes it t = 1, 2, ...; every
 * per-step scalar (bias corrections, decayed learning rates) is computed once per step, in the
 * step's control block. As in PyTorch, each tensor also has its own step count
 * ({@link Parameter#stepCount()}): the steps that updated it. Bias corrections, Adagrad's decay and
 * the momentum buffer's first-step rule follow it, so a tensor or group added after steps have
 * begun starts at its own step 1, and a frozen tensor ({@link Parameter#freeze()}) keeps its count
 * until it is unfrozen. Learning-rate schedules follow the optimizer's counter t (or, with
 * {@link ScheduleClock#ITERATIONS}, every step taken, skipped ones included). Internally the
 * tensors of one group that share a step offset (t minus their own count) form one entry of the
 * group table, so there is still one update launch per kernel kind. Hyper-parameters, the learning
 * rate included, may change between steps ({@link ParamGroup#setConfig}); the state layout may not.
 *
 * <p><b>What lives where (CUDA).</b> On the device: every tensor and state, the segment tables,
 * and the control block: the step counter (64-bit), the skipped-step counter, the loss scale's
 * inverse (and with {@link Builder#optDynamicLossScaling} the scale, its growth tracker and
 * counts), the clipping threshold, the last step's gradient norm, clip factor and non-finite
 * verdict, and every group's hyper-parameters, learning-rate schedule ({@link ParamGroup#setSchedule})
 * and per-step scalars, which a small kernel computes from the counter at the start of each step. On the host: the configurations (uploaded when they
 * change) and the registration. So {@link #step()} never waits for the device and a whole step
 * can be captured once and replayed ({@link #captureStep()}); reading what a step did
 * ({@link #lastStep()}, and {@link #stepCount()} when steps can be skipped) waits for it.
 *
 * <p><b>Storage formats.</b> Params and grads may be {@link Precision#FP32}, {@link Precision#BF16}
 * or {@link Precision#FP16}; states are FP32 or BF16 ({@link Builder#optStatePrecision}). A 16-bit
 * param gets fp32 master weights by default ({@link Builder#optMasterWeights}): the update runs
 * on the master copy and the param receives its rounding in the same pass. Arithmetic is float32
 * throughout; loads widen exactly and stores round to nearest even, bit for bit on both backends.
 * With {@link Builder#optStateQuantization} the states of large tensors are 8-bit blockwise codes
 * instead ({@link StateQuantization#BLOCKWISE_8BIT}).
 *
 * <p><b>Gradient pipeline.</b> Each step the gradient is read as {@code g * (1/lossScale)}
 * ({@link #setGradScale}), then, with {@link Builder#optMaxGradNorm}, multiplied by
 * {@code min(1, maxNorm / (norm + 1e-6))} where {@code norm} is the global L2 norm over every
 * tensor, summed in double in a fixed order (bit-identical on both backends; against PyTorch's
 * float32 norm it differs by rounding, about 1e-7 relative). A NaN or infinity is handled by the
 * {@link NonFinitePolicy}. A step only reads the gradient buffers; {@link #zeroGrad()} zeroes them.
 *
 * <p><b>Threads.</b> An optimizer may be used from any thread. Its methods, and those of its
 * groups and parameters, are serialized by the optimizer's monitor: two threads calling
 * {@link #step()} at once make two whole steps, one after the other. Copies into and out of
 * buffers are not serialized with steps; order them yourself (the usual pattern: write gradients,
 * then step, then read).
 *
 * <p><b>Asynchrony (CUDA).</b> {@link #step()} only queues kernels, on the caller's stream
 * ({@link Builder#optCudaStream}) or the legacy default stream, and never waits for the device; a copy out of a buffer waits for the queued work. A device error
 * may therefore surface in a later call. After a failed step the optimizer refuses further steps
 * ({@link IllegalStateException} with the cause), since some tensors may have been updated and
 * others not.
 *
 * <p><b>Lifetime.</b> {@link #close()} frees every buffer the library owns (allocated buffers and
 * all state tensors); wrapped caller memory is never freed. Any later call throws
 * {@link IllegalStateException}.
 */
public final class DeviceOptimizer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("io.fusedopt");

    private final Engine engine;
    private final String backendReason;
    private final OptimizerConfig defaults;
    private final List<ParamGroup> groups = new ArrayList<>();
    private final Set<String> parameterNames = new HashSet<>();
    /** Every registered tensor by name ({@link #parameter}). */
    private final Map<String, Parameter> parametersByName = new java.util.HashMap<>();
    /**
     * The memory of every registered param and grad, per base (an array, or native addresses), by
     * start; the ranges in one map never overlap. States and master weights are not here: the
     * library allocates them afresh, so they share memory with nothing.
     */
    private final Map<Object, TreeMap<Long, MemoryClaim>> registeredMemory = new IdentityHashMap<>();
    private final Precision statePrecision;
    private final StateQuantization stateQuantization;
    private final boolean masterWeights;
    /** Whether 16-bit params are rounded stochastically ({@link Builder#optStochasticRounding}). */
    private final boolean stochasticRounding;
    /** The key of stochastic rounding's random bits: the builder's, or a loaded checkpoint's. */
    private long roundingSeed;
    private final NonFinitePolicy nonFinitePolicy;
    private final float maxGradNorm;
    /** GradScaler's rule on the device, or null (a fixed scale, {@link #setGradScale}). */
    private final DynamicLossScaling dynamicLossScaling;
    private final boolean trackGradNorm;
    private final ScheduleClock scheduleClock;
    private final List<StepGraph> graphs = new ArrayList<>();
    /** The whole step over all tensors; built at the first step, null when the tensors changed. */
    private StepProgram program;
    /** A sharded rank's exchange of gradient statistics ({@link ShardedOptimizer}); null when unsharded. */
    private StepProgram.StatisticsExchange statisticsExchange;
    private GroupTable groupTable;
    /** Each entry of {@link #groupTable}: the group whose configuration it holds (its offset is in the table). */
    private List<ParamGroup> entryGroups = List.of();
    /**
     * The captures of the current program (each mapped to it); a capture not here was taken from a
     * program closed because the set of tensors changed, and replaying it is refused.
     */
    private final Map<StepProgram.CapturedStep, StepProgram> capturedFrom = new IdentityHashMap<>();
    /**
     * The control block of the last program, read when the set of tensors changed after steps; the
     * next program starts from its counters and {@link #lastStep()} reports it until then. Null
     * when no program was closed since the last restore.
     */
    private StepControl carriedControl;
    private boolean groupsChanged;
    /** Steps taken or replayed (applied or skipped); the applied count lives in the control block. */
    private long stepsRequested;
    /** The counters a fresh program starts from (0, or a restored checkpoint's). */
    private long initialStep;
    private long initialSkippedSteps;
    /** The dynamic scaler's state a fresh program starts from (its initial scale, or a restored checkpoint's). */
    private LossScaleState initialScalerState;
    private float invGradScale = 1f;
    private double gradScale = 1.0;
    private boolean closed;
    private RuntimeException failure;
    /** Test seam ({@link #registrationAllocator}); null: the engine allocates. */
    private RegistrationAllocator registrationAllocator;

    private DeviceOptimizer(Engine engine, String backendReason, Builder builder) {
        this.engine = engine;
        try {
            requireRunsHere(builder.defaults);
        } catch (IllegalArgumentException e) {
            engine.close(); // the engine was opened for this optimizer only
            throw e;
        }
        this.backendReason = backendReason;
        this.defaults = builder.defaults;
        this.statePrecision = builder.statePrecision;
        this.stateQuantization = builder.stateQuantization;
        this.stochasticRounding = builder.stochasticRounding;
        this.roundingSeed = builder.roundingSeed;
        this.masterWeights = builder.masterWeights && !builder.stochasticRounding;
        this.nonFinitePolicy = builder.nonFinitePolicy;
        this.maxGradNorm = builder.maxGradNorm;
        this.dynamicLossScaling = builder.dynamicLossScaling;
        this.trackGradNorm = builder.trackGradNorm;
        this.scheduleClock = builder.scheduleClock;
        if (dynamicLossScaling != null) {
            initialScalerState = new LossScaleState((float) dynamicLossScaling.initialScale(), 0, 0, 0);
            gradScale = initialScalerState.scale();
        }
    }

    /** A builder for an optimizer whose groups default to {@code defaults}. */
    public static Builder builder(OptimizerConfig defaults) {
        return new Builder(defaults);
    }

    /** Shorthand for {@code builder(defaults).optBackend(backend).build()}. */
    public static DeviceOptimizer create(Backend backend, OptimizerConfig defaults) {
        return builder(defaults).optBackend(backend).build();
    }

    /** The backend this optimizer runs on ({@link Backend#CUDA}, {@link Backend#CPU_FAST} or {@link Backend#CPU}, never AUTO). */
    public Backend backend() {
        return engine.backend();
    }

    /** Why this backend was chosen: "requested", or for AUTO the probe's finding. */
    public String backendReason() {
        return backendReason;
    }

    /** The device (or CPU) this optimizer runs on, in one line. */
    public String deviceDescription() {
        return engine.description();
    }

    /**
     * The configuration new groups get from {@link #addGroup()}. A group's variant of it needs no
     * cast: {@code addGroup(defaults().toBuilder().optWeightDecay(0).build())}
     * ({@link OptimizerConfig#toBuilder()}).
     */
    public OptimizerConfig defaults() {
        return defaults;
    }

    /** A new group with the default configuration. */
    public ParamGroup addGroup() {
        return addGroup(defaults);
    }

    /**
     * A new group with its own configuration: a variant of the defaults (an {@link Adam} without
     * weight decay for biases) or another algorithm altogether (a {@link Lamb} group beside an
     * AdamW one, a {@link Momentum} group for some layers): one {@link #step()} updates every group
     * by its own algorithm, each tensor bit for bit as an optimizer of that algorithm alone would,
     * and one checkpoint holds them all. Groups may be added after steps have begun; their tensors
     * then start at their own step 1 ({@link ParamGroup#add}). Adding a group keeps captured steps
     * usable; adding a tensor to it does not.
     *
     * @throws IllegalArgumentException for an algorithm that keeps states but has no 8-bit form,
     *     in an optimizer with {@link Builder#optStateQuantization 8-bit states}, or a configuration
     *     this backend cannot run (Muon's {@link Muon.Numerics#FAST} without cuBLAS, with the
     *     reason); nothing is added
     */
    public synchronized ParamGroup addGroup(OptimizerConfig config) {
        ensureUsable();
        Check.notNull("config", config);
        if (stateQuantization != StateQuantization.NONE && !Algorithms.of(config).hasQuantizedStates()
                && !config.stateKinds().isEmpty()) {
            throw new IllegalArgumentException("this optimizer keeps " + stateQuantization + " states, which "
                    + config.getClass().getSimpleName() + " has no form of; the algorithms with 8-bit states are "
                    + Algorithms.withQuantizedStates() + " (and those without states, such as Sgd, may join)");
        }
        requireRunsHere(config);
        ParamGroup group = new ParamGroup(this, groups.size(), config);
        groups.add(group);
        // An empty group changes no update: the program and its captures stay (its tensors' add() rebuilds).
        return group;
    }

    /**
     * Refuses a configuration this optimizer's backend cannot run (Muon's fast mode without
     * cuBLAS), with the reason.
     */
    void requireRunsHere(OptimizerConfig config) {
        Algorithms.of(config).requireRunsOn(config, engine);
    }

    /** The groups in the order they were added. */
    public synchronized List<ParamGroup> groups() {
        ensureOpen();
        return List.copyOf(groups);
    }

    /**
     * The registered tensor named {@code name} (in any group), or empty when none is: names are
     * unique within an optimizer ({@link ParamGroup#add}).
     *
     * @throws IllegalArgumentException when {@code name} is null
     */
    public synchronized java.util.Optional<Parameter> parameter(String name) {
        ensureOpen();
        Check.notNull("name", name);
        return java.util.Optional.ofNullable(parametersByName.get(name));
    }

    /**
     * Sets {@code schedule} on every group now in this optimizer ({@link ParamGroup#setSchedule}),
     * as a PyTorch scheduler covers every {@code param_group}; null removes every group's schedule.
     * A group added later has none until it is given one. Each group applies the schedule's factors
     * to its own learning rate.
     *
     * @throws IllegalArgumentException when the schedule would take some group's rate beyond
     *     float32's range (the message names the group); no group is changed then
     */
    public synchronized void setSchedule(LrSchedule schedule) {
        ensureUsable();
        // Every group is checked before any changes, so that a refusal leaves all of them as they were.
        if (schedule != null) for (ParamGroup g : groups) g.requireScheduleFits(schedule, g.currentConfig());
        for (ParamGroup g : groups) g.setSchedule(schedule);
    }

    /** What learning-rate schedules count ({@link Builder#optScheduleClock}). */
    public ScheduleClock scheduleClock() {
        return scheduleClock;
    }

    /**
     * New library-owned memory of {@code length} float32 elements, set to zero: device memory on the
     * CUDA backend, host memory on the CPU backend. Freed by its {@code close()} or by this
     * optimizer's.
     *
     * @throws IllegalArgumentException for a negative length, or one the backend cannot index
     *     (CPU: 2^31 - 9 elements, one Java array; CPU_FAST: about 2^59)
     * @throws OutOfMemoryError on the CPU backends, naming {@code -Xmx}, when the memory does not
     *     fit the heap (a tensor larger than the heap's limit is refused before anything is allocated)
     */
    public TensorBuffer allocate(long length) {
        return allocate(length, Precision.FP32);
    }

    /** As {@link #allocate(long)}, with elements stored in {@code precision}. */
    public synchronized TensorBuffer allocate(long length, Precision precision) {
        ensureOpen();
        Check.notNull("precision", precision);
        if (length < 0) throw new IllegalArgumentException("length must be >= 0, got " + length);
        return engine.allocate(length, precision, 0f);
    }

    /**
     * Wraps device memory the caller owns (for example a tensor of another library), as a raw CUDA
     * device address, so that no JCuda type appears in this API. The memory must hold
     * {@code length} float32 elements, be 4-byte aligned, and stay allocated while this optimizer
     * uses it; it is never freed here. CUDA backend only.
     *
     * @throws IllegalArgumentException for a null address, a misaligned one, host memory, or a
     *     range that runs past the end of its allocation
     */
    public TensorBuffer wrapDevicePointer(long address, long length) {
        return wrapDevicePointer(address, length, Precision.FP32);
    }

    /**
     * As {@link #wrapDevicePointer(long, long)}, for elements stored in {@code precision} (the
     * address must then be aligned to the element size). Misaligned but element-aligned addresses
     * work: the kernels use 16-byte accesses only where every operand of a tensor allows them.
     */
    public synchronized TensorBuffer wrapDevicePointer(long address, long length, Precision precision) {
        ensureOpen();
        Check.notNull("precision", precision);
        if (address == 0) throw new IllegalArgumentException("device pointer must not be null (0)");
        if (length < 0) throw new IllegalArgumentException("length must be >= 0, got " + length);
        return engine.wrapDevicePointer(address, length, precision);
    }

    /** Wraps a Java array the caller owns, updated in place. CPU backends only. */
    public synchronized TensorBuffer wrapHost(float[] array) {
        ensureOpen();
        Check.notNull("array", array);
        return engine.wrapHost(FloatBuffer.wrap(array));
    }

    /**
     * Wraps a writable {@link FloatBuffer} the caller owns, from its position to its limit, updated
     * in place. CPU backends only. On {@link Backend#CPU_FAST} the Vector API path reads a heap
     * buffer through its array and, from JDK 19 on, a native-order direct buffer in place; a direct
     * buffer on JDK 17 and 18, or a view of a ByteBuffer in the other byte order or on the heap, runs
     * the loops ({@link #deviceDescription()} says which ran, once a step is prepared).
     *
     * <p>Lifetime: the returned buffer holds a strong reference to {@code buffer} (and so to the
     * direct {@code ByteBuffer} behind a view) until it is closed, which for a registered tensor is
     * when this optimizer closes; the collector therefore never frees wrapped memory under a step,
     * even after the caller dropped its own references. Memory freed explicitly while registered
     * cannot be detected: a direct buffer released through its cleaner (by
     * {@code sun.misc.Unsafe.invokeCleaner} or a pooling library), or a mapping unmapped that way,
     * leaves the next step reading and writing freed memory, which can crash the JVM. Release such
     * memory only after closing the optimizer.
     */
    public synchronized TensorBuffer wrapHost(FloatBuffer buffer) {
        ensureOpen();
        return engine.wrapHost(buffer);
    }

    /**
     * Updates every registered tensor once, with each group's current configuration, and advances
     * the step counter (unless the {@link NonFinitePolicy} skips the step). On CUDA it only queues
     * the work, except under {@link NonFinitePolicy#THROW}, which waits for the verdict.
     *
     * @throws NonFiniteGradientException under {@link NonFinitePolicy#THROW} when the gradient held
     *     a NaN or infinity; the step was skipped and the optimizer stays usable
     * @throws IllegalStateException when no tensor is registered (nothing is counted then), the
     *     optimizer is closed, or an earlier step failed
     */
    public synchronized void step() {
        ensureUsable();
        // A sharded rank that owns no tensor still steps: its counters and verdict follow the others'.
        if (program == null && statisticsExchange == null) requireRegisteredTensors("take a step");
        try {
            prepareProgram().run();
        } catch (RuntimeException e) {
            failure = e;
            throw e;
        }
        stepsRequested++;
        if (nonFinitePolicy == NonFinitePolicy.THROW) {
            StepReport report = lastStep();
            if (report.skipped()) throw new NonFiniteGradientException(report);
        }
    }

    /**
     * Captures one whole step for replay ({@link StepGraph#replay()}): on CUDA a CUDA graph, so a
     * step costs one launch call. Capturing takes no step. The capture holds the set of tensors
     * updated now: after a tensor is added, frozen or unfrozen, replaying it is refused (capture
     * again). Not available under {@link NonFinitePolicy#THROW}, whose check needs the host.
     *
     * @throws IllegalStateException under {@link NonFinitePolicy#THROW}, when no tensor is
     *     registered (nothing is captured then), the optimizer is closed, or an earlier step failed
     */
    public synchronized StepGraph captureStep() {
        return captureStep(null);
    }

    /**
     * {@link #captureStep()} with more work in the same graph after the step, queued by
     * {@code alsoCaptured} on the capturing stream (a sharded step's NCCL broadcasts); null: none.
     */
    synchronized StepGraph captureStep(java.util.function.LongConsumer alsoCaptured) {
        ensureUsable();
        if (program == null && statisticsExchange == null) requireRegisteredTensors("capture a step");
        if (nonFinitePolicy == NonFinitePolicy.THROW) {
            throw new IllegalStateException("a captured step cannot throw on a non-finite gradient: use NonFinitePolicy.SKIP_STEP"
                    + " and read lastStep()");
        }
        StepProgram source = prepareProgram();
        StepProgram.CapturedStep captured = alsoCaptured == null ? source.capture() : source.capture(alsoCaptured);
        capturedFrom.put(captured, source);
        StepGraph graph = new StepGraph(this, captured);
        graphs.add(graph);
        return graph;
    }

    /** One step by replaying a capture (from {@link StepGraph}). */
    synchronized void replay(StepProgram.CapturedStep captured) {
        ensureUsable();
        if (program == null || capturedFrom.get(captured) != program) {
            // Its launches name the tensors of an older program (freed on CUDA): replaying it would
            // update the wrong set, or read freed tables. Refused before anything runs: the optimizer stays usable.
            throw new IllegalStateException("this captured step was captured before the set of updated tensors changed (a"
                    + " tensor was added, frozen or unfrozen, or a checkpoint load changed tensors' step counts):"
                    + " capture the step again with captureStep()");
        }
        try {
            if (groupsChanged) refreshGroups();
            captured.replay();
        } catch (RuntimeException e) {
            failure = e;
            throw e;
        }
        stepsRequested++;
    }

    synchronized void forget(StepGraph graph) {
        graphs.remove(graph);
    }

    /**
     * The number of applied steps: 0 before the first, t after step t. Skipped steps do not count;
     * where the policy can skip steps this reads the control block and so waits for the device.
     */
    public synchronized long stepCount() {
        ensureOpen();
        return countAppliedSteps();
    }

    /**
     * Whether the step counters can be read without waiting for the device: no program yet, no
     * policy that skips steps, or a host backend.
     */
    private boolean countersOnHost() {
        return program == null || nonFinitePolicy == NonFinitePolicy.PROPAGATE || engine.backend() != Backend.CUDA;
    }

    /** {@link #nextSchedulerStep()} where reading it does not wait for the device, else empty (for toString). */
    synchronized java.util.OptionalLong nextSchedulerStepWithoutWaiting() {
        return !closed && countersOnHost() ? java.util.OptionalLong.of(nextSchedulerStep()) : java.util.OptionalLong.empty();
    }

    /** {@link #stepCount()} without the open check. */
    private long countAppliedSteps() {
        if (program == null) return initialStep;
        if (nonFinitePolicy == NonFinitePolicy.PROPAGATE) return initialStep + stepsRequested;
        return program.readControl().step;
    }

    /** What the last step did (waits for queued work on CUDA). */
    public synchronized StepReport lastStep() {
        ensureOpen();
        StepControl c = program != null ? program.readControl() : carriedControl;
        if (c == null) return new StepReport(initialStep, initialSkippedSteps, false, false, Float.NaN, 1f);
        return new StepReport(c.step, c.skippedSteps, c.skip, c.foundNonFinite, c.gradNorm, c.clipCoef);
    }

    /**
     * The learning rate of every group (in {@link #groups()} order) that the next step will use, as
     * the float32 the kernels use: the configuration's rate, times its schedule's factor at the
     * next scheduler step ({@link ParamGroup#setSchedule}, {@link ScheduleClock}); PyTorch's
     * {@code get_last_lr()} after {@code scheduler.step()}. One group's: {@link ParamGroup#learningRate()}.
     * Waits for the device where {@link #stepCount()} does.
     */
    public synchronized float[] lastLearningRates() {
        ensureOpen();
        long n = nextSchedulerStep();
        float[] out = new float[groups.size()];
        for (ParamGroup g : groups) out[g.index()] = g.scheduledLearningRate(n);
        return out;
    }

    /**
     * The scheduler step the next step's schedules are evaluated at: the applied steps so far, plus
     * the skipped ones with {@link ScheduleClock#ITERATIONS}. Waits for the device where
     * {@link #stepCount()} does.
     */
    synchronized long nextSchedulerStep() {
        if (scheduleClock == ScheduleClock.APPLIED_STEPS) return stepCount();
        // Steps are skipped only where stepCount() reads the control block; elsewhere the skipped
        // count is the one the counters started from.
        if (program == null || nonFinitePolicy == NonFinitePolicy.PROPAGATE) return stepCount() + initialSkippedSteps;
        StepControl c = program.readControl();
        return c.step + c.skippedSteps;
    }

    /** Whether the gradient norm is computed at every step ({@link Builder#optTrackGradNorm}, or for clipping, a policy or dynamic scaling). */
    public boolean tracksGradNorm() {
        return checksGradient();
    }

    /** The dynamic loss scaling configuration, if it is on ({@link Builder#optDynamicLossScaling}). */
    public java.util.Optional<DynamicLossScaling> dynamicLossScaling() {
        return java.util.Optional.ofNullable(dynamicLossScaling);
    }

    /**
     * The dynamic loss scaler's state: the scale of the next step, the growth tracker and the counts
     * (reads the control block: waits for queued steps on CUDA).
     *
     * @throws IllegalStateException when dynamic loss scaling is off
     */
    public synchronized LossScaleState lossScaleState() {
        ensureOpen();
        if (dynamicLossScaling == null) {
            throw new IllegalStateException("dynamic loss scaling is off: build with optDynamicLossScaling(...) to use it");
        }
        if (program == null) return initialScalerState;
        StepControl c = program.readControl();
        return new LossScaleState(c.lossScale, c.growthTracker, c.scaleGrowths, c.scaleBackoffs);
    }

    /**
     * The device address of the dynamic loss scale (a float32 in the optimizer's control block on
     * CUDA), for a loss-scaling kernel of your own that multiplies the loss by it without the host
     * waiting for the device, as {@link #gradScale()} and {@link #lossScaleState()} do. The address
     * stays the same until the optimizer is closed (tensors added, frozen or unfrozen and loads do
     * not move it); do not write to it.
     *
     * <p><b>Stream order.</b> Each step's finalize kernel writes the scale of the next step there,
     * on the optimizer's stream ({@link Builder#optCudaStream}, or the legacy default stream): a
     * kernel queued on that stream after {@link #step()} (or a replay) reads the scale for the next
     * step's gradients. A kernel on another stream must wait for an event recorded on the
     * optimizer's stream after the step; a kernel queued before the step reads the previous scale.
     * Before the first step it holds the initial scale, after a {@link #load} the restored one
     * (written on the stream).
     *
     * @throws IllegalStateException when dynamic loss scaling is off, the backend is not CUDA (the
     *     CPU backends never wait: use {@link #gradScale()}), no tensor is registered yet (the
     *     control block is made with the first step program), the optimizer is closed or an earlier
     *     step failed
     */
    public synchronized long lossScaleDevicePointer() {
        ensureUsable();
        if (dynamicLossScaling == null) {
            throw new IllegalStateException("dynamic loss scaling is off: build with optDynamicLossScaling(...) to use it");
        }
        if (engine.backend() != Backend.CUDA) {
            throw new IllegalStateException("the " + engine.backend() + " backend keeps the loss scale in host memory: read it with"
                    + " gradScale(), which does not wait on the CPU backends");
        }
        if (program == null) {
            requireRegisteredTensors("give the loss scale's device address");
            prepareProgram();
        }
        return ((CudaEngine) engine).controlBlockAddress() + StepControl.OFFSET_LOSS_SCALE;
    }

    /**
     * Sets the loss scale the gradients were multiplied by (mixed-precision training): from the
     * next step on, each gradient element is multiplied by {@code (float) (1.0 / scale)} before
     * use. Combine with {@link NonFinitePolicy#SKIP_STEP} so an overflowed step is skipped. For a
     * scale that follows overflows on the device, see {@link Builder#optDynamicLossScaling}.
     *
     * @throws IllegalStateException with dynamic loss scaling, which owns the scale
     */
    public synchronized void setGradScale(double scale) {
        ensureUsable();
        if (dynamicLossScaling != null) {
            throw new IllegalStateException("dynamic loss scaling sets the scale on the device; setGradScale is for a fixed scale"
                    + " (build without optDynamicLossScaling)");
        }
        if (!(scale > 0) || Double.isInfinite(scale)) {
            throw new IllegalArgumentException("loss scale must be finite and > 0, got " + scale);
        }
        float inverse = (float) (1.0 / scale);
        if (inverse == 0f || Float.isInfinite(inverse)) {
            throw new IllegalArgumentException("loss scale " + scale + " has no float32 inverse");
        }
        gradScale = scale;
        invGradScale = inverse;
        if (program != null) applyInputs(program);
    }

    /**
     * The loss scale set by {@link #setGradScale} (1 by default); with dynamic loss scaling the
     * scale of the next step ({@link #lossScaleState()}, which waits for queued steps on CUDA: in a
     * loop that must not wait, give your loss kernel {@link #lossScaleDevicePointer()} instead).
     */
    public synchronized double gradScale() {
        ensureOpen();
        if (dynamicLossScaling != null) return lossScaleState().scale();
        return gradScale;
    }

    /** The storage format of state tensors. */
    public Precision statePrecision() {
        return statePrecision;
    }

    /** How states are quantized ({@link Builder#optStateQuantization}); NONE unless chosen. */
    public StateQuantization stateQuantization() {
        return stateQuantization;
    }

    /** Whether the states of a tensor of {@code length} elements in a group of {@code config} are 8-bit blockwise. */
    boolean quantizesStatesOf(OptimizerConfig config, long length) {
        return stateQuantization == StateQuantization.BLOCKWISE_8BIT && Algorithms.of(config).hasQuantizedStates()
                && length >= StateQuantization.MIN_ELEMENTS;
    }

    /** A new 8-bit blockwise state for registration (its map from its kind). */
    AbstractTensorBuffer allocateQuantizedForRegistration(long length, StateKind kind, float initialValue) {
        return engine.allocateQuantized(length, BlockwiseQuantization.mapFor(kind), initialValue);
    }

    /** Whether 16-bit params get fp32 master weights. */
    public boolean usesMasterWeights() {
        return masterWeights;
    }

    /**
     * The seed of stochastic rounding when it is on ({@link Builder#optStochasticRounding}): the
     * builder's, or that of the checkpoint loaded last. Empty when params are rounded to nearest.
     */
    public synchronized java.util.OptionalLong stochasticRoundingSeed() {
        return stochasticRounding ? java.util.OptionalLong.of(roundingSeed) : java.util.OptionalLong.empty();
    }

    /** The flags every group table entry carries for the optimizer's own options (stochastic rounding). */
    private int optimizerFlags() {
        return stochasticRounding ? KernelFlags.STOCHASTIC_ROUNDING : 0;
    }

    public NonFinitePolicy nonFinitePolicy() {
        return nonFinitePolicy;
    }

    /**
     * Saves this optimizer's state (every param, master weights and state tensor, the step
     * counters, each group's hyper-parameters, the loss scale) to {@code file} in the safetensors
     * format, atomically: the bytes go to a temporary file in the same folder, which is synced and
     * then renamed over {@code file}, and the folder is synced. A crash or an I/O error at any
     * moment leaves either the previous file or the new one, never a mix. Waits for queued steps.
     *
     * @throws CheckpointException naming the file when its folder does not exist (folders are not
     *     created), when it is itself a folder (refused before anything is written), or when writing
     *     fails; nothing is written then and the previous file is unchanged
     */
    public synchronized void save(java.nio.file.Path file) throws java.io.IOException {
        save(file, SaveOptions.defaults());
    }

    /** As {@link #save(java.nio.file.Path)}, writing what {@code options} say (for example no params). */
    public synchronized void save(java.nio.file.Path file, SaveOptions options) throws java.io.IOException {
        ensureUsable();
        Check.notNull("file", file);
        Check.notNull("options", options);
        Checkpoint.save(this, file, options, Checkpoint.FILES);
    }

    /** {@link #save} through another sink (fault injection in tests). */
    synchronized void save(java.nio.file.Path file, Checkpoint.SinkFactory sinks) throws java.io.IOException {
        ensureUsable();
        Checkpoint.save(this, file, SaveOptions.defaults(), sinks);
    }

    /**
     * Writes the bytes {@link #save(java.nio.file.Path)} would write to {@code out}, to embed this
     * optimizer's state in a checkpoint of your own (a ZIP entry, a framework's archive). The
     * stream is flushed and left open. Not atomic: an I/O error leaves part of a checkpoint in the
     * stream, which a load then refuses.
     *
     * @throws CheckpointException when writing fails; the optimizer is unchanged
     */
    public synchronized void save(java.io.OutputStream out) throws java.io.IOException {
        save(out, SaveOptions.defaults());
    }

    /** As {@link #save(java.io.OutputStream)}, writing what {@code options} say (for example no params). */
    public synchronized void save(java.io.OutputStream out, SaveOptions options) throws java.io.IOException {
        ensureUsable();
        Check.notNull("output stream", out);
        Check.notNull("options", options);
        Checkpoint.save(this, out, options);
    }

    /** The bytes {@link #save(java.nio.file.Path)} would write, in memory. */
    public synchronized byte[] saveToBytes() throws java.io.IOException {
        return saveToBytes(SaveOptions.defaults());
    }

    /**
     * The bytes {@link #save(java.nio.file.Path, SaveOptions)} would write, in memory.
     *
     * @throws CheckpointException when the checkpoint exceeds one Java array (2^31 - 9 bytes):
     *     save to a file or a stream instead
     */
    public synchronized byte[] saveToBytes(SaveOptions options) throws java.io.IOException {
        ensureUsable();
        Check.notNull("options", options);
        return Checkpoint.saveToBytes(this, options);
    }

    /**
     * Restores a state saved by {@link #save} (on either backend) into this optimizer, whose
     * groups and parameters must match the file's: same algorithm and state layout, same names,
     * lengths and storage formats. Params (when the checkpoint has them), master weights, states,
     * step counters (each tensor's own count and frozen flag included), hyper-parameters and the
     * loss scale are restored; continuing then gives, bit
     * for bit, what the saved run would have given. Everything is checked (structure, checksums,
     * shapes) before anything changes: a damaged or mismatched file changes nothing. The one
     * difference of format taken: 8-bit states ({@link Builder#optStateQuantization}) load into
     * float ones dequantized, and float states into 8-bit ones quantized, each listed in
     * {@link LoadReport#converted()} (docs/checkpoints.md, "8-bit states").
     *
     * @throws CheckpointException naming the problem
     */
    public synchronized void load(java.nio.file.Path file) throws java.io.IOException {
        load(file, LoadOptions.defaults());
    }

    /**
     * As {@link #load(java.nio.file.Path)}; a non-strict load ({@link LoadOptions.Builder#optStrict})
     * loads the tensors whose names, lengths and formats match and reports the others, which keep
     * their values. A tensor some of whose states were not loaded restarts at its own step 0 (its
     * next update is its own step 1, as for a tensor added now: {@link Parameter#stepCount()}) and
     * keeps its frozen flag; every other tensor gets the checkpoint's own count and frozen flag.
     * A non-strict load also takes a checkpoint with fewer groups than this optimizer (fine-tuning
     * with a new head in a group of its own): the saved groups are restored into the first ones,
     * the others keep their configuration and schedule ({@link LoadReport#extraGroups()}).
     * A strict load with these options returns a report too: every tensor loaded, and whether the
     * checkpoint held the params.
     *
     * @return what was loaded, and what was missing, unexpected or mismatched
     * @throws CheckpointException naming the problem; nothing has changed then
     */
    public synchronized LoadReport load(java.nio.file.Path file, LoadOptions options) throws java.io.IOException {
        ensureUsable();
        Check.notNull("file", file);
        Check.notNull("options", options);
        return Checkpoint.load(this, file, options);
    }

    /**
     * As {@link #load(java.nio.file.Path)}, from a stream that holds one checkpoint and nothing
     * after it (bytes written by {@link #save(java.io.OutputStream)} or {@link #saveToBytes}), read
     * to its end and left open. Sizes the stream declares are trusted only as far as it delivers
     * them: a stream that ends early is truncated, one that goes on is refused.
     */
    public synchronized void load(java.io.InputStream in) throws java.io.IOException {
        load(in, LoadOptions.defaults());
    }

    /** As {@link #load(java.io.InputStream)} with {@link LoadOptions} (see {@link #load(java.nio.file.Path, LoadOptions)}). */
    public synchronized LoadReport load(java.io.InputStream in, LoadOptions options) throws java.io.IOException {
        ensureUsable();
        Check.notNull("input stream", in);
        Check.notNull("options", options);
        return Checkpoint.load(this, in, options);
    }

    /** As {@link #load(java.nio.file.Path)}, from the bytes of a checkpoint (which are only read). */
    public synchronized void load(byte[] checkpoint) throws java.io.IOException {
        load(checkpoint, LoadOptions.defaults());
    }

    /** As {@link #load(byte[])} with {@link LoadOptions} (see {@link #load(java.nio.file.Path, LoadOptions)}). */
    public synchronized LoadReport load(byte[] checkpoint, LoadOptions options) throws java.io.IOException {
        ensureUsable();
        Check.notNull("checkpoint bytes", checkpoint);
        Check.notNull("options", options);
        return Checkpoint.load(this, checkpoint, options);
    }

    /** The zero fill over {@link #zeroFillGrads}, prepared at the first {@link #zeroGrad()} after registration changed. */
    private Engine.ZeroFill gradZeroFill;
    private List<AbstractTensorBuffer> zeroFillGrads = List.of();

    /**
     * Sets every registered gradient to zero (+0 in its storage format, FP32, BF16 or FP16), as
     * PyTorch's {@code optimizer.zero_grad(set_to_none=False)}; params, states, master weights and
     * buffers that are not a registered gradient are not touched. Wrapped gradients (your memory)
     * are zeroed in place. On CUDA it is one kernel launch for all gradients, queued on the
     * optimizer's stream and never waited for, so it is ordered with the steps and replays around
     * it. It is not part of a {@link #captureStep() captured step}: call it beside the replays
     * ({@code step.replay(); opt.zeroGrad();}), which costs one more launch call. With no tensor
     * registered it does nothing. It does not end registration.
     *
     * @throws IllegalStateException when the optimizer is closed or an earlier step failed
     */
    public synchronized void zeroGrad() {
        ensureUsable();
        List<AbstractTensorBuffer> grads = new ArrayList<>();
        for (ParamGroup group : groups) {
            for (Parameter p : group.parameterList()) grads.add(ownBuffer("grad of '" + p.name() + "'", p.grad()));
        }
        if (gradZeroFill == null || !sameBuffers(grads, zeroFillGrads)) {
            // Registration changed since the fill was prepared (only additions are possible).
            if (gradZeroFill != null) gradZeroFill.close();
            gradZeroFill = null;
            gradZeroFill = engine.prepareZeroFill(grads);
            zeroFillGrads = grads;
        }
        gradZeroFill.run();
    }

    private static boolean sameBuffers(List<AbstractTensorBuffer> a, List<AbstractTensorBuffer> b) {
        if (a.size() != b.size()) return false;
        for (int i = 0; i < a.size(); i++) if (a.get(i) != b.get(i)) return false;
        return true;
    }

    /** A tensor's own step count and frozen flag as a checkpoint restores them. */
    record TensorSteps(long steps, boolean frozen) {}

    /**
     * Applies a validated checkpoint; {@code writeTensors} copies the data into the buffers.
     * {@code schedules} holds each group's schedule (null entries: none); {@code scaler} the dynamic
     * scaler's state (null without dynamic scaling); {@code tensorSteps} the own step count
     * ({@code <= step}) and frozen flag of each parameter it names (the others are not changed).
     */
    synchronized void applyCheckpoint(List<OptimizerConfig> configs, long step, long skippedSteps, double scale,
                                      List<LrSchedule> schedules, LossScaleState scaler, Map<Parameter, TensorSteps> tensorSteps,
                                      java.util.OptionalLong savedRoundingSeed, Runnable writeTensors) {
        ensureUsable();
        try {
            boolean entriesChange = false;
            for (var e : tensorSteps.entrySet()) {
                Parameter p = e.getKey();
                TensorSteps restored = e.getValue();
                boolean sameEntry = p.frozen() == restored.frozen()
                        && (restored.frozen() || p.stepOffset() == step - restored.steps());
                entriesChange |= !sameEntry;
            }
            // A different partition into entries needs a new program; otherwise the program (and its
            // captures) go on with the restored counters, as before per-tensor counts existed.
            if (entriesChange) tensorsChanged();
            writeTensors.run();
            tensorSteps.forEach((p, restored) -> p.restoreSteps(step, restored.steps(), restored.frozen()));
            for (int g = 0; g < configs.size(); g++) groups.get(g).restoreConfig(configs.get(g));
            for (int g = 0; g < schedules.size(); g++) groups.get(g).restoreSchedule(schedules.get(g));
            if (scaler != null) {
                initialScalerState = scaler;
                if (program != null) program.setScalerState(scaler.scale(), scaler.growthTracker(), scaler.growths(), scaler.backoffs());
            }
            // A resumed run draws the random bits the saved run would have drawn.
            if (stochasticRounding && savedRoundingSeed.isPresent()) roundingSeed = savedRoundingSeed.getAsLong();
            initialStep = step;
            initialSkippedSteps = skippedSteps;
            carriedControl = null;
            stepsRequested = 0;
            gradScale = scale;
            invGradScale = (float) (1.0 / scale);
            if (program != null) {
                program.setCounters(step, skippedSteps);
                applyInputs(program);
                program.setRoundingSeed(roundingSeed);
            }
        } catch (RuntimeException e) {
            failure = e;
            throw e;
        }
    }

    /** Waits until every queued update has finished (a no-op on the CPU backends). */
    public synchronized void synchronize() {
        ensureOpen();
        engine.synchronize();
    }

    /** Bytes of memory the library currently owns for this optimizer (buffers and state). */
    public synchronized long ownedBytes() {
        ensureOpen();
        return engine.ownedBytes();
    }

    public synchronized boolean isClosed() {
        return closed;
    }

    /**
     * One line for a debugger: the backend, the algorithm, the groups, the tensors (and how many are
     * frozen), the step count, and whether the optimizer is closed or failed. It never waits for
     * the device: where the applied-step count lives on the device only (CUDA with a policy that
     * can skip steps), it gives the steps taken instead.
     */
    @Override
    public synchronized String toString() {
        java.util.Set<String> algorithms = new java.util.LinkedHashSet<>();
        algorithms.add(defaults.algorithm());
        for (ParamGroup g : groups) algorithms.add(g.currentConfig().algorithm());
        StringBuilder b = new StringBuilder("DeviceOptimizer[").append(engine.backend()).append(", ")
                .append(String.join(" + ", algorithms));
        int tensors = 0, frozen = 0;
        for (ParamGroup g : groups) {
            for (Parameter p : g.parameterList()) {
                tensors++;
                if (p.frozen()) frozen++;
            }
        }
        b.append(", ").append(groups.size()).append(groups.size() == 1 ? " group, " : " groups, ").append(tensors)
                .append(tensors == 1 ? " tensor" : " tensors").append(frozen > 0 ? " (" + frozen + " frozen)" : "");
        if (closed) return b.append(", closed]").toString();
        if (countersOnHost()) {
            b.append(", step ").append(countAppliedSteps());
        } else {
            b.append(", ").append(initialStep + initialSkippedSteps + stepsRequested).append(" steps taken (applied count on the device)");
        }
        if (failure != null) b.append(", failed: ").append(failure.getMessage());
        return b.append(']').toString();
    }

    /** Frees everything the library owns; idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        graphs.forEach(StepGraph::closeQuietly);
        graphs.clear();
        if (program != null) program.close();
        engine.close();
    }

    // ---- package-private plumbing for ParamGroup and Parameter ----

    /**
     * The set of updated tensors changed (a tensor added, frozen or unfrozen): the program is rebuilt
     * at the next step, from the counters and scaler state of the one it replaces, and captures of
     * the old program are closed (replaying one is refused).
     */
    synchronized void tensorsChanged() {
        if (program == null) return;
        StepControl last;
        try {
            last = program.readControl();
        } catch (RuntimeException e) {
            failure = e;
            throw e;
        }
        carriedControl = last;
        initialStep = last.step;
        initialSkippedSteps = last.skippedSteps;
        stepsRequested = 0;
        if (dynamicLossScaling != null) {
            initialScalerState = new LossScaleState(last.lossScale, last.growthTracker, last.scaleGrowths, last.scaleBackoffs);
        }
        // Idempotent: StepGraph.close() may close them again. Forgotten here, so replaying one is refused.
        capturedFrom.keySet().forEach(StepProgram.CapturedStep::close);
        capturedFrom.clear();
        program.close();
        program = null;
    }

    /**
     * The applied-step counter t (0 before the first step): a tensor registered or unfrozen now
     * takes its own first step at t + 1. Waits for the device where {@link #stepCount()} does.
     */
    synchronized long appliedSteps() {
        return stepCount();
    }

    /** A group's configuration changed: its hyper-parameters are uploaded before the next step. */
    synchronized void groupChanged() {
        groupsChanged = true;
    }

    /**
     * The step program over every tensor: one update launch per kernel kind and storage class
     * (float32-only, mixed, every operand 16-bit, 8-bit states), all groups in one table.
     */
    private StepProgram prepareProgram() {
        if (program != null) {
            if (groupsChanged) refreshGroups();
            return program;
        }
        // One entry per (group, step offset): tensors registered together share one, a tensor added
        // or unfrozen later gets its own, and every entry runs in the same launch of its kernel kind.
        List<ParamGroup> entries = new ArrayList<>();
        List<Long> entryOffsets = new ArrayList<>();
        Map<KernelBatch, List<TensorOperands>> byLaunch = new LinkedHashMap<>(); // keyed by an empty batch of the kind
        int registered = 0; // the statistics add the tensors' partial sums in this order (GradientStatistics.registrationPositions)
        for (ParamGroup group : groups) {
            Map<Long, Integer> entryOfOffset = new TreeMap<>();
            for (Parameter p : group.parameterList()) {
                if (p.frozen()) continue; // not updated, its gradient not read
                int entry = entryOfOffset.computeIfAbsent(p.stepOffset(), offset -> {
                    entries.add(group);
                    entryOffsets.add(offset);
                    return entries.size() - 1;
                });
                TensorOperands t = p.operands(group.plan().slots(), entry, registered++);
                UpdateKernel kernel = group.plan().kernel();
                KernelBatch kind = new KernelBatch(kernel, t.needsMixedKernel(), kernel.hasNarrowEntryPoint() && t.narrow(),
                        t.quantized(), List.of());
                byLaunch.computeIfAbsent(kind, k -> new ArrayList<>()).add(t);
            }
        }
        List<KernelBatch> batches = new ArrayList<>();
        byLaunch.forEach((kind, tensors) -> batches.add(new KernelBatch(kind.kernel(), kind.mixed(), kind.narrow(), kind.quantized(), tensors)));
        groupTable = new GroupTable(entries.size());
        groupTable.setSchedulesCountSkippedSteps(scheduleClock == ScheduleClock.ITERATIONS);
        entryGroups = entries;
        for (int e = 0; e < entries.size(); e++) {
            ParamGroup group = entries.get(e);
            groupTable.set(e, group.plan().kernel(), group.hyperParameters(), group.plan().staticFlags() | optimizerFlags(), null,
                    entryOffsets.get(e));
        }
        fillGroupTable();
        StepProgram prepared = engine.prepare(batches, groupTable);
        try {
            applyInputs(prepared);
            // The seed changes only here and at a checkpoint load, not with the inputs a loop sets every step.
            prepared.setRoundingSeed(roundingSeed);
            prepared.setCounters(initialStep, initialSkippedSteps);
            if (dynamicLossScaling != null) {
                prepared.setScalerState(initialScalerState.scale(), initialScalerState.growthTracker(), initialScalerState.growths(),
                        initialScalerState.backoffs());
            }
        } catch (RuntimeException e) {
            prepared.close();
            throw e;
        }
        program = prepared;
        return program;
    }

    /** Writes each entry's group configuration and schedule (its offset stays). */
    private void fillGroupTable() {
        for (int e = 0; e < entryGroups.size(); e++) {
            ParamGroup group = entryGroups.get(e);
            UpdateKernel kernel = group.plan().kernel();
            LrSchedule schedule = group.currentSchedule();
            groupTable.set(e, kernel, group.hyperParameters(), group.plan().staticFlags() | optimizerFlags(),
                    schedule == null ? null : schedule.segments(), groupTable.offset(e));
        }
        groupsChanged = false;
    }

    private void refreshGroups() {
        fillGroupTable();
        program.groupsChanged();
    }

    /**
     * Makes this optimizer one rank of a sharded step ({@link ShardedOptimizer}): from the next
     * step, the gradient statistics' total is {@code exchange}'s, over every rank's partial sums,
     * and a step with no tensor of its own is taken (it updates nothing, and exchanges).
     */
    synchronized void shareStatistics(StepProgram.StatisticsExchange exchange) {
        statisticsExchange = exchange;
        if (program != null) program.setStatisticsExchange(exchange);
    }

    private void applyInputs(StepProgram target) {
        if (statisticsExchange != null) target.setStatisticsExchange(statisticsExchange);
        if (dynamicLossScaling != null) {
            target.setDynamicScaling(true, dynamicLossScaling.growthFactor(), dynamicLossScaling.backoffFactor(),
                    dynamicLossScaling.growthInterval());
        }
        target.setInputs(invGradScale, maxGradNorm, checksGradient(), nonFinitePolicy != NonFinitePolicy.PROPAGATE);
    }

    /** Whether the statistics pass runs: for the policy, clipping, dynamic scaling or tracking the norm. */
    private boolean checksGradient() {
        return nonFinitePolicy != NonFinitePolicy.PROPAGATE || maxGradNorm > 0f || dynamicLossScaling != null || trackGradNorm;
    }

    Engine engine() {
        return engine;
    }

    /** How {@link ParamGroup#add} allocates states and master weights. */
    interface RegistrationAllocator {
        AbstractTensorBuffer allocate(long length, Precision precision, float initialValue);
    }

    /** A state or master-weights buffer for a tensor being registered: from the engine, or the test seam's. */
    AbstractTensorBuffer allocateForRegistration(long length, Precision precision, float initialValue) {
        return registrationAllocator != null ? registrationAllocator.allocate(length, precision, initialValue)
                : engine.allocate(length, precision, initialValue);
    }

    /**
     * Test seam: replaces how registration allocates (to run out of memory half-way through an
     * {@code add}, which no test can provoke reliably on a shared machine); null restores the engine.
     */
    synchronized void registrationAllocator(RegistrationAllocator allocator) {
        registrationAllocator = allocator;
    }

    synchronized void ensureOpen() {
        if (closed) throw new IllegalStateException("the optimizer is closed");
    }

    /** Open and not failed. */
    synchronized void ensureUsable() {
        ensureOpen();
        if (failure != null) {
            throw new IllegalStateException("an earlier step failed, so parameters may be partly updated: "
                    + failure.getMessage(), failure);
        }
    }

    /**
     * Refuses a step over nothing, as PyTorch refuses an empty parameter list: it would count a step
     * (and end registration) without updating anything, which is almost always a registration bug.
     */
    private void requireRegisteredTensors(String action) {
        int frozen = 0;
        for (ParamGroup group : groups) {
            for (Parameter p : group.parameterList()) {
                if (!p.frozen()) return;
                frozen++;
            }
        }
        if (frozen > 0) {
            // A step would count for the optimizer (and its schedules) while updating nothing.
            throw new IllegalStateException("cannot " + action + ": every registered tensor is frozen (" + frozen
                    + "); unfreeze one with Parameter.unfreeze() or register a tensor first");
        }
        throw new IllegalStateException("cannot " + action + ": no tensor is registered (" + groups.size() + " group"
                + (groups.size() == 1 ? "" : "s") + ", none with a parameter); register tensors first with"
                + " addGroup().add(name, param, grad)");
    }

    /** Reserves a parameter name, unique within this optimizer. */
    synchronized void claimName(String name) {
        requireValidName(name);
        if (!parameterNames.add(name)) throw new IllegalArgumentException("a parameter named '" + name + "' already exists");
    }

    /** A parameter name: not null or blank, at most {@link Parameter#MAX_NAME_LENGTH} characters. */
    static void requireValidName(String name) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("parameter name must not be null or blank");
        if (name.length() > Parameter.MAX_NAME_LENGTH) {
            throw new IllegalArgumentException("parameter name must be at most " + Parameter.MAX_NAME_LENGTH + " characters (the"
                    + " longest a checkpoint can load), got " + name.length() + " characters starting '" + name.substring(0, 40) + "...'");
        }
    }

    synchronized void releaseName(String name) {
        parameterNames.remove(name);
    }

    /** Makes a tensor just registered findable by {@link #parameter}. */
    synchronized void registered(Parameter parameter) {
        parametersByName.put(parameter.name(), parameter);
    }

    /** A registered buffer's memory and what it backs ("param 'w'"). */
    private record MemoryClaim(MemoryRange range, String what) {}

    /**
     * Refuses a param and grad that share memory with each other or with a registered param or
     * grad. Wrapping the same memory twice is harmless (reading it twice is), so the check is here,
     * at registration: a step would update shared bytes twice, or overwrite a gradient it reads.
     */
    synchronized void requireUnsharedMemory(String paramWhat, AbstractTensorBuffer param, String gradWhat,
                                            AbstractTensorBuffer grad) {
        MemoryRange p = param.memoryRange();
        MemoryRange g = grad.memoryRange();
        if (p != null && g != null && p.overlaps(g)) throw sharedMemory(gradWhat, g, paramWhat, p);
        for (var mine : List.of(new MemoryClaim(p, paramWhat), new MemoryClaim(g, gradWhat))) {
            if (mine.range() == null) continue;
            MemoryClaim other = overlapping(mine.range());
            if (other != null) throw sharedMemory(mine.what(), mine.range(), other.what(), other.range());
        }
    }

    /**
     * Refuses a new gradient for a registered param (at unfreezing) whose memory overlaps a registered
     * param or grad other than {@code oldGrad}, the gradient it replaces.
     */
    synchronized void requireUnsharedGradient(String gradWhat, AbstractTensorBuffer grad, AbstractTensorBuffer oldGrad) {
        MemoryRange g = grad.memoryRange();
        if (g == null) return;
        // Checked without the old gradient's claim (the new one may reuse its memory), which is put back.
        MemoryRange old = oldGrad.memoryRange();
        TreeMap<Long, MemoryClaim> oldClaims = old == null ? null : registeredMemory.get(old.base());
        MemoryClaim oldClaim = oldClaims == null ? null : oldClaims.remove(old.start());
        try {
            MemoryClaim other = overlapping(g);
            if (other != null) throw sharedMemory(gradWhat, g, other.what(), other.range());
        } finally {
            if (oldClaim != null) oldClaims.put(old.start(), oldClaim);
        }
    }

    /** Forgets the memory claim of a buffer that no longer backs a registered tensor. */
    synchronized void releaseMemory(AbstractTensorBuffer buffer) {
        MemoryRange range = buffer.memoryRange();
        if (range == null || range.bytes() == 0) return;
        TreeMap<Long, MemoryClaim> claims = registeredMemory.get(range.base());
        if (claims != null) claims.remove(range.start());
    }

    /** Records the memory of a buffer that now backs a registered tensor (checked by {@link #requireUnsharedMemory}). */
    synchronized void claimMemory(String what, AbstractTensorBuffer buffer) {
        MemoryRange range = buffer.memoryRange();
        if (range == null || range.bytes() == 0) return;
        registeredMemory.computeIfAbsent(range.base(), b -> new TreeMap<>()).put(range.start(), new MemoryClaim(range, what));
    }

    /** The registered range that shares a byte with {@code range}, or null. */
    private MemoryClaim overlapping(MemoryRange range) {
        TreeMap<Long, MemoryClaim> claims = registeredMemory.get(range.base());
        if (claims == null || range.bytes() == 0) return null;
        // Registered ranges are disjoint: only the last one starting before our end can reach into us.
        var below = claims.lowerEntry(range.start() + range.bytes());
        return below != null && below.getValue().range().overlaps(range) ? below.getValue() : null;
    }

    private static IllegalArgumentException sharedMemory(String what, MemoryRange range, String otherWhat, MemoryRange other) {
        return new IllegalArgumentException(what + " (" + range.description() + ") shares memory with " + otherWhat + " ("
                + other.description() + "): a step would update those bytes twice or overwrite a gradient it reads; wrap each"
                + " array, slice or device range once and register it once, as the param or the grad of one tensor");
    }

    /** The buffer as this optimizer's engine sees it, or an exception saying why it is not usable here. */
    AbstractTensorBuffer ownBuffer(String role, TensorBuffer buffer) {
        Check.notNull(role, buffer);
        if (!(buffer instanceof AbstractTensorBuffer b) || b.owner() != engine) {
            throw new IllegalArgumentException(role + " buffer does not belong to this optimizer: allocate or wrap it"
                    + " through this optimizer (" + engine.backend() + " backend)");
        }
        if (b.isClosed()) throw new IllegalArgumentException(role + " buffer is closed");
        return b;
    }

    /** Builds a {@link DeviceOptimizer}: {@code optBackend} and {@code optDeviceOrdinal} are optional. */
    public static final class Builder {
        private final OptimizerConfig defaults;
        private Backend backend = Backend.AUTO;
        private int deviceOrdinal;
        private long cudaStream;
        private Precision statePrecision = Precision.FP32;
        private StateQuantization stateQuantization = StateQuantization.NONE;
        private boolean masterWeights = true;
        private boolean masterWeightsChosen;
        private boolean stochasticRounding;
        private long roundingSeed;
        private NonFinitePolicy nonFinitePolicy = NonFinitePolicy.PROPAGATE;
        private float maxGradNorm;
        private DynamicLossScaling dynamicLossScaling;
        private boolean trackGradNorm;
        private ScheduleClock scheduleClock = ScheduleClock.APPLIED_STEPS;
        private int cpuThreads = Runtime.getRuntime().availableProcessors();
        private CudaOpener cudaOpener = Builder::openCuda;

        private Builder(OptimizerConfig defaults) {
            Check.notNull("defaults", defaults);
            this.defaults = defaults;
        }

        /** {@link Backend#AUTO} (the default), {@link Backend#CUDA}, {@link Backend#CPU_FAST} or {@link Backend#CPU}. */
        public Builder optBackend(Backend v) {
            Check.notNull("backend", v);
            backend = v;
            return this;
        }

        /**
         * The storage format of state tensors: {@link Precision#FP32} (the default) or
         * {@link Precision#BF16}, which halves their memory and traffic (states are rounded to
         * nearest even after every update). FP16 is refused: Adam's second moment underflows it.
         */
        public Builder optStatePrecision(Precision v) {
            Check.notNull("state precision", v);
            if (v == Precision.FP16) {
                throw new IllegalArgumentException("optimizer states may be FP32 or BF16; FP16's range (6e-8 to 65504) loses"
                        + " squared gradients");
            }
            statePrecision = v;
            return this;
        }

        /**
         * {@link StateQuantization#BLOCKWISE_8BIT} keeps the states of every tensor of at least
         * {@link StateQuantization#MIN_ELEMENTS} elements as 8-bit codes with a float32 absmax per
         * block of 256 (bitsandbytes' 8-bit optimizers, bit for bit the same on every backend); smaller
         * tensors keep {@link #optStatePrecision}. {@link StateQuantization#NONE} is the default.
         * {@link #build()} refuses it for an algorithm without 8-bit states (those with: Adam and
         * AdamW, Momentum, RMSProp, Adagrad, Lion, AdEMAMix).
         */
        public Builder optStateQuantization(StateQuantization v) {
            Check.notNull("state quantization", v);
            stateQuantization = v;
            return this;
        }

        /**
         * Whether a 16-bit param gets fp32 master weights (default true): the update then runs on the
         * fp32 copy and writes the rounded value to the param. Without, the param itself is widened,
         * updated and rounded each step, so updates smaller than half its ulp are lost.
         */
        public Builder optMasterWeights(boolean v) {
            masterWeights = v;
            masterWeightsChosen = true;
            return this;
        }

        /**
         * Rounds every bf16 or fp16 param stochastically after each update, with no master weights
         * (see {@link io.fusedopt.internal.Conversions#narrowStochastic}): a value between two
         * neighbours rounds away from zero with probability equal to its distance from the lower one
         * over their spacing, so small updates survive on average where rounding to nearest loses
         * them. The random bits are Philox4x32-10's ({@link io.fusedopt.internal.Philox}) for the
         * counter (element, the param's name's stream, the optimizer's step) and this seed: every
         * backend draws the same bits, and a run resumed from a checkpoint (which stores the seed)
         * draws what the uninterrupted run would. Params must then be 16-bit ({@link ParamGroup#add}
         * refuses an FP32 one); it cannot be combined with {@code optMasterWeights(true)}.
         */
        public Builder optStochasticRounding(long seed) {
            stochasticRounding = true;
            roundingSeed = seed;
            return this;
        }

        /** What a NaN or infinity in the gradient does (default {@link NonFinitePolicy#PROPAGATE}). */
        public Builder optNonFinitePolicy(NonFinitePolicy v) {
            Check.notNull("non-finite policy", v);
            nonFinitePolicy = v;
            return this;
        }

        /**
         * Clips the global L2 norm of the (unscaled) gradient over all tensors to {@code v}, as
         * PyTorch's {@code clip_grad_norm_}, fused into the step; 0 (the default) turns it off.
         */
        public Builder optMaxGradNorm(double v) {
            Check.nonNegative("maxGradNorm (0: no clipping)", v); // the float32 rule every hyper-parameter follows
            maxGradNorm = (float) v;
            return this;
        }

        /**
         * Dynamic loss scaling with {@code torch.amp.GradScaler}'s rule, on the device: the scale
         * backs off after a non-finite gradient (whose step is skipped) and grows after
         * {@code growthInterval} clean steps; see {@link DynamicLossScaling}. Needs
         * {@link NonFinitePolicy#SKIP_STEP}. {@link DeviceOptimizer#setGradScale} is then refused;
         * null (the default) keeps the fixed scale.
         */
        public Builder optDynamicLossScaling(DynamicLossScaling v) {
            dynamicLossScaling = v;
            return this;
        }

        /**
         * Computes the global L2 norm of the (unscaled) gradient at every step, readable as
         * {@link StepReport#gradNorm()} from {@link DeviceOptimizer#lastStep()}, without clipping and
         * whatever the {@link NonFinitePolicy} (default false). It costs one read of every gradient
         * per step. Clipping, {@link NonFinitePolicy#SKIP_STEP}, {@link NonFinitePolicy#THROW} and
         * dynamic loss scaling compute it anyway.
         */
        public Builder optTrackGradNorm(boolean v) {
            trackGradNorm = v;
            return this;
        }

        /**
         * What learning-rate schedules count (default {@link ScheduleClock#APPLIED_STEPS}):
         * {@link ScheduleClock#ITERATIONS} counts skipped steps too, as PyTorch's usual loop that calls
         * {@code scheduler.step()} every iteration. The same on every backend (on CUDA the finalize
         * kernel counts on the device, so captured steps follow it), and saved in checkpoints: a
         * checkpoint loads only into an optimizer with the same clock.
         */
        public Builder optScheduleClock(ScheduleClock v) {
            Check.notNull("schedule clock", v);
            scheduleClock = v;
            return this;
        }

        /**
         * Threads the {@link Backend#CPU_FAST} backend updates with, the stepping thread included
         * (default: every available processor), from 1 to 4 per available processor: a step is
         * split into one equal share per thread and waits for the slowest, so threads beyond the
         * cores only take turns on them. Ignored by the other backends.
         *
         * @throws IllegalArgumentException for a count outside that range
         */
        public Builder optCpuThreads(int v) {
            FastCpuEngine.requireThreadCount(v);
            cpuThreads = v;
            return this;
        }

        /** The CUDA device ordinal (default 0). */
        public Builder optDeviceOrdinal(int v) {
            if (v < 0) throw new IllegalArgumentException("device ordinal must be >= 0, got " + v);
            deviceOrdinal = v;
            return this;
        }

        /**
         * The raw handle of a {@code CUstream} of the device's primary context (the stream a
         * framework computes gradients on): steps, copies and {@link #synchronize()} then use it
         * and never touch the default stream. 0 (the default) is the legacy default stream. Used
         * only when the optimizer runs on CUDA.
         */
        public Builder optCudaStream(long streamHandle) {
            cudaStream = streamHandle;
            return this;
        }

        /**
         * Builds the optimizer. {@link Backend#AUTO} falls back to {@link Backend#CPU_FAST} on any failure
         * to open CUDA, and logs its choice and why on the {@link System.Logger} named {@code "io.fusedopt"}
         * (java.util.logging unless the application plugs in another backend): INFO for CUDA or no GPU,
         * WARNING when a GPU was found but could not be opened. Each distinct message is logged once per
         * process, however many optimizers AUTO builds; {@link DeviceOptimizer#backendReason()} gives it
         * for every optimizer. The CPU backends never look for CUDA: requested explicitly, they load no
         * JCuda class and no native library.
         *
         * @throws BackendUnavailableException when {@link Backend#CUDA} was requested and cannot run here
         * @throws CudaException when {@link Backend#CUDA} was requested and a driver call failed while opening it
         */
        public DeviceOptimizer build() {
            if (stateQuantization != StateQuantization.NONE && !Algorithms.of(defaults).hasQuantizedStates()) {
                throw new IllegalArgumentException(stateQuantization + " states: " + defaults.getClass().getSimpleName()
                        + " has no 8-bit form; the algorithms with 8-bit states are " + Algorithms.withQuantizedStates());
            }
            if (stochasticRounding && masterWeightsChosen && masterWeights) {
                throw new IllegalArgumentException("stochastic rounding rounds the 16-bit params themselves; with master weights"
                        + " (optMasterWeights(true)) they are rounded to nearest from the fp32 copy: choose one");
            }
            if (backend != Backend.CUDA && backend != Backend.AUTO && cudaStream != 0) {
                throw new IllegalArgumentException("a CUDA stream was given for the " + backend + " backend");
            }
            if (dynamicLossScaling != null && nonFinitePolicy != NonFinitePolicy.SKIP_STEP) {
                throw new IllegalArgumentException("dynamic loss scaling skips the step of a non-finite gradient and backs off, as"
                        + " GradScaler does: it needs optNonFinitePolicy(NonFinitePolicy.SKIP_STEP), not " + nonFinitePolicy);
            }
            switch (backend) {
                case CPU:
                    return new DeviceOptimizer(new CpuEngine(), "requested", this);
                case CPU_FAST:
                    return new DeviceOptimizer(new FastCpuEngine(cpuThreads), "requested", this);
                case CUDA:
                    return new DeviceOptimizer(cudaOpener.open(deviceOrdinal, cudaStream), "requested", this);
                default:
                    Engine cuda;
                    try {
                        cuda = cudaOpener.open(deviceOrdinal, cudaStream);
                    } catch (RuntimeException e) {
                        // Whatever keeps CUDA from opening (no GPU, a context that cannot be created on a busy
                        // exclusive-process GPU or out of memory, kernels that do not load, a bad stream or
                        // ordinal) is a reason to fall back, not an error of AUTO's.
                        Engine cpu = new FastCpuEngine(cpuThreads);
                        String why = e instanceof BackendUnavailableException ? e.getMessage()
                                : "CUDA backend unavailable: opening CUDA device " + deviceOrdinal + " failed: " + e;
                        // No GPU is the expected case; a GPU the probe found usable that then fails is worth a warning.
                        logAutoChoiceOnce(e instanceof BackendUnavailableException ? Level.INFO : Level.WARNING,
                                "fusedopt: AUTO chose " + cpu.description() + ": " + why);
                        return new DeviceOptimizer(cpu, "AUTO: " + why, this);
                    }
                    logAutoChoiceOnce(Level.INFO, "fusedopt: AUTO chose CUDA: " + cuda.description());
                    return new DeviceOptimizer(cuda, "AUTO: " + cuda.description(), this);
            }
        }

        /**
         * AUTO's messages logged so far in this process. A program that builds an optimizer per model
         * or per test would otherwise repeat the same line each time; a different outcome (another
         * device, another failure) is new information and is logged.
         */
        private static final java.util.Set<String> AUTO_CHOICES_LOGGED = java.util.concurrent.ConcurrentHashMap.newKeySet();

        /** Bounds what AUTO_CHOICES_LOGGED remembers; past it, new messages are logged every time. */
        private static final int AUTO_CHOICES_REMEMBERED = 1024;

        private static void logAutoChoiceOnce(Level level, String message) {
            boolean remembering = AUTO_CHOICES_LOGGED.size() < AUTO_CHOICES_REMEMBERED;
            if (remembering ? AUTO_CHOICES_LOGGED.add(message) : !AUTO_CHOICES_LOGGED.contains(message)) {
                LOG.log(level, message);
            }
        }

        /** The CUDA device ordinal chosen ({@link #optDeviceOrdinal}; 0 by default): a sharded optimizer's communicator must be on it. */
        int deviceOrdinal() {
            return deviceOrdinal;
        }

        /** The CUDA stream handle chosen ({@link #optCudaStream}; 0: the legacy default stream). */
        long cudaStream() {
            return cudaStream;
        }

        /** Test seam: an optimizer on an engine the test configured (the fast CPU backend's small blocks). */
        DeviceOptimizer build(Engine engine) {
            return new DeviceOptimizer(engine, "given", this);
        }

        /** Opens the CUDA engine for a device ordinal and a raw stream handle. */
        interface CudaOpener {
            Engine open(int ordinal, long stream);
        }

        /**
         * Test seam: how CUDA and AUTO open the CUDA engine, so that a test can make opening fail as a
         * busy or broken GPU does (a CudaException from the driver), which no healthy machine provokes.
         */
        Builder cudaOpener(CudaOpener opener) {
            cudaOpener = opener;
            return this;
        }

        private static Engine openCuda(int ordinal, long stream) {
            try {
                return new CudaEngine(ordinal, stream);
            } catch (LinkageError e) {
                throw new BackendUnavailableException("CUDA backend unavailable: JCuda could not be linked: " + e, e);
            }
        }
    }
}
