package io.fusedopt;

import io.fusedopt.cpu.CpuEngine;
import io.fusedopt.cuda.CudaEngine;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Check;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdateLaunch;
import java.lang.System.Logger.Level;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs one optimizer algorithm over parameter tensors registered in groups, on the CPU reference
 * backend or on a CUDA device.
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
 * <p><b>Steps.</b> The step counter starts at 0 and {@link #step()} makes it t = 1, 2, ...; every
 * per-step scalar (bias corrections, decayed learning rates) is computed from t on the host. All
 * tensors must be registered before the first step, because that counter, Adam's bias correction
 * and the momentum buffer's first-step rule are shared by every tensor. Hyper-parameters, the
 * learning rate included, may change between steps ({@link ParamGroup#setConfig}); the state
 * layout may not.
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
    /** One launch per kernel kind over all tensors; built at the first step, null when stale. */
    private List<UpdateLaunch> launches;
    private long stepCount;
    private boolean closed;
    private RuntimeException failure;

    private DeviceOptimizer(Engine engine, String backendReason, OptimizerConfig defaults) {
        this.engine = engine;
        this.backendReason = backendReason;
        this.defaults = defaults;
    }

    /** A builder for an optimizer whose groups default to {@code defaults}. */
    public static Builder builder(OptimizerConfig defaults) {
        return new Builder(defaults);
    }

    /** Shorthand for {@code builder(defaults).optBackend(backend).build()}. */
    public static DeviceOptimizer create(Backend backend, OptimizerConfig defaults) {
        return builder(defaults).optBackend(backend).build();
    }

    /** The backend this optimizer runs on ({@link Backend#CPU} or {@link Backend#CUDA}, never AUTO). */
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

    /** The configuration new groups get from {@link #addGroup()}. */
    public OptimizerConfig defaults() {
        return defaults;
    }

    /** A new group with the default configuration. */
    public ParamGroup addGroup() {
        return addGroup(defaults);
    }

    /**
     * A new group with its own configuration, which must be of this optimizer's algorithm (for
     * example an {@link Adam} without weight decay for biases).
     */
    public synchronized ParamGroup addGroup(OptimizerConfig config) {
        ensureUsable();
        requireSameAlgorithm(config);
        requireNoStepTaken("add a parameter group");
        ParamGroup group = new ParamGroup(this, groups.size(), config);
        groups.add(group);
        tensorsChanged();
        return group;
    }

    /** The groups in the order they were added. */
    public synchronized List<ParamGroup> groups() {
        ensureOpen();
        return List.copyOf(groups);
    }

    /**
     * New library-owned memory of {@code length} float32 elements, set to zero: device memory on the
     * CUDA backend, host memory on the CPU backend. Freed by its {@code close()} or by this
     * optimizer's.
     */
    public synchronized TensorBuffer allocate(long length) {
        ensureOpen();
        if (length < 0) throw new IllegalArgumentException("length must be >= 0, got " + length);
        return engine.allocate(length, 0f);
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
    public synchronized TensorBuffer wrapDevicePointer(long address, long length) {
        ensureOpen();
        if (address == 0) throw new IllegalArgumentException("device pointer must not be null (0)");
        if (length < 0) throw new IllegalArgumentException("length must be >= 0, got " + length);
        return engine.wrapDevicePointer(address, length);
    }

    /** Wraps a Java array the caller owns, updated in place. CPU backend only. */
    public synchronized TensorBuffer wrapHost(float[] array) {
        ensureOpen();
        Check.notNull("array", array);
        return engine.wrapHost(FloatBuffer.wrap(array));
    }

    /**
     * Wraps a writable {@link FloatBuffer} the caller owns, from its position to its limit, updated
     * in place. CPU backend only.
     */
    public synchronized TensorBuffer wrapHost(FloatBuffer buffer) {
        ensureOpen();
        return engine.wrapHost(buffer);
    }

    /**
     * Updates every registered tensor once, with each group's current configuration, and advances
     * the step counter. On CUDA it only queues the work.
     */
    public synchronized void step() {
        ensureUsable();
        long next = stepCount + 1;
        for (ParamGroup group : groups) group.prepareStep(next);
        try {
            if (launches == null) launches = prepareLaunches();
            for (UpdateLaunch launch : launches) launch.run();
        } catch (RuntimeException e) {
            failure = e;
            throw e;
        }
        stepCount = next;
    }

    /** The number of completed steps: 0 before the first, t after step t. */
    public synchronized long stepCount() {
        ensureOpen();
        return stepCount;
    }

    /** Waits until every queued update has finished (a no-op on the CPU backend). */
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

    /** Frees everything the library owns; idempotent. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        engine.close();
    }

    // ---- package-private plumbing for ParamGroup and Parameter ----

    /** The set of tensors changed: the launches are rebuilt at the next step. */
    synchronized void tensorsChanged() {
        launches = null;
    }

    /**
     * One launch per kernel kind, covering every tensor of every group that runs it (groups are
     * batched by {@link SegmentTable#MAX_GROUPS}, the groups one launch's parameters can carry).
     */
    private List<UpdateLaunch> prepareLaunches() {
        Map<UpdateKernel, List<ParamGroup>> byKernel = new EnumMap<>(UpdateKernel.class);
        for (ParamGroup group : groups) byKernel.computeIfAbsent(group.plan().kernel(), k -> new ArrayList<>()).add(group);
        List<UpdateLaunch> prepared = new ArrayList<>();
        for (Map.Entry<UpdateKernel, List<ParamGroup>> entry : byKernel.entrySet()) {
            List<ParamGroup> kernelGroups = entry.getValue();
            for (int from = 0; from < kernelGroups.size(); from += SegmentTable.MAX_GROUPS) {
                List<ParamGroup> batch = kernelGroups.subList(from, Math.min(from + SegmentTable.MAX_GROUPS, kernelGroups.size()));
                List<TensorOperands> tensors = new ArrayList<>();
                float[][] scalars = new float[batch.size()][];
                int[][] flags = new int[batch.size()][];
                for (int g = 0; g < batch.size(); g++) {
                    ParamGroup group = batch.get(g);
                    scalars[g] = group.scalars();
                    flags[g] = group.flags();
                    for (Parameter p : group.parameterList()) tensors.add(p.operands(group.plan().slots(), g));
                }
                prepared.add(engine.prepare(entry.getKey(), tensors, scalars, flags));
            }
        }
        return List.copyOf(prepared);
    }

    Engine engine() {
        return engine;
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

    synchronized void requireNoStepTaken(String action) {
        if (stepCount > 0) {
            throw new IllegalStateException("cannot " + action + " after the first step (step count " + stepCount
                    + "): the step counter, bias corrections and first-step rules are shared by all tensors");
        }
    }

    void requireSameAlgorithm(OptimizerConfig config) {
        Check.notNull("config", config);
        if (config.getClass() != defaults.getClass()) {
            throw new IllegalArgumentException("this optimizer runs " + defaults.algorithm() + "; a group cannot use "
                    + config.algorithm());
        }
    }

    /** Reserves a parameter name, unique within this optimizer. */
    synchronized void claimName(String name) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("parameter name must not be null or blank");
        if (!parameterNames.add(name)) throw new IllegalArgumentException("a parameter named '" + name + "' already exists");
    }

    synchronized void releaseName(String name) {
        parameterNames.remove(name);
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

        private Builder(OptimizerConfig defaults) {
            Check.notNull("defaults", defaults);
            this.defaults = defaults;
        }

        /** {@link Backend#AUTO} (the default), {@link Backend#CUDA} or {@link Backend#CPU}. */
        public Builder optBackend(Backend v) {
            Check.notNull("backend", v);
            backend = v;
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
         * @throws BackendUnavailableException when {@link Backend#CUDA} was requested and cannot run here
         */
        public DeviceOptimizer build() {
            switch (backend) {
                case CPU:
                    if (cudaStream != 0) {
                        throw new IllegalArgumentException("a CUDA stream was given for the CPU backend");
                    }
                    return new DeviceOptimizer(new CpuEngine(), "requested", defaults);
                case CUDA:
                    return new DeviceOptimizer(openCuda(deviceOrdinal, cudaStream), "requested", defaults);
                default:
                    try {
                        Engine cuda = openCuda(deviceOrdinal, cudaStream);
                        LOG.log(Level.INFO, "fusedopt: AUTO chose CUDA: " + cuda.description());
                        return new DeviceOptimizer(cuda, "AUTO: " + cuda.description(), defaults);
                    } catch (BackendUnavailableException e) {
                        LOG.log(Level.INFO, "fusedopt: AUTO chose CPU: " + e.getMessage());
                        return new DeviceOptimizer(new CpuEngine(), "AUTO: " + e.getMessage(), defaults);
                    }
            }
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
