package io.fusedopt.cpu;

import io.fusedopt.Backend;
import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.StepProgram;
import java.nio.FloatBuffer;
import java.util.List;

/**
 * The fast CPU backend: tensors in Java-array blocks, {@link BlockedHostBuffer}s (any length; small
 * ones side by side in shared arrays, {@link SmallTensorArena}), updates split
 * by chunk across a {@link WorkerTeam} and run by {@link VectorKernels} where the Vector API works
 * here and reads the tensor's memory (the backend's own, a caller's float[] or heap FloatBuffer, and
 * from JDK 19 on a caller's direct FloatBuffer), else by {@link ReferenceKernels} on every core.
 * Bit-identical to {@link CpuEngine}; {@link #description()} says which ran.
 */
public final class FastCpuEngine extends HostEngine {
    private final int threads;
    private final int blockShift;
    private WorkerTeam team; // started by the first prepare: an optimizer that never steps starts no thread
    /** Which kernels the latest prepared step's tensors run ({@link FastStepProgram#pathSummary()}); null before. */
    private String preparedPaths;

    /** An engine using {@code threads} threads (the caller's included). */
    public FastCpuEngine(int threads) {
        this(threads, BlockedHostBuffer.DEFAULT_BLOCK_SHIFT);
    }

    /**
     * An engine whose tensors are split into array blocks of 2^blockShift elements (16 to 28;
     * the default, 28, keeps blocks at 1 GiB of float32). Smaller blocks serve tests: tensors that
     * cross many blocks without gigabytes of memory.
     */
    public FastCpuEngine(int threads, int blockShift) {
        requireThreadCount(threads);
        this.threads = threads;
        this.blockShift = blockShift;
        decideVectorSupportInBackground();
    }

    private static final java.util.concurrent.atomic.AtomicBoolean VECTOR_DECISION_STARTED = new java.util.concurrent.atomic.AtomicBoolean();

    /**
     * Starts {@link VectorSupport}'s decision (its self-tests run before the JIT has compiled
     * anything: a few hundred milliseconds) on a daemon thread, once per JVM, so that it overlaps
     * whatever the caller does between creating the optimizer and its first step; the first step,
     * or a description, waits for it only if it has not finished (the JVM's class initialization
     * lock). Until now it ran inside the first step, which took ten times as long as on the CPU backend.
     */
    private static void decideVectorSupportInBackground() {
        if (!VECTOR_DECISION_STARTED.compareAndSet(false, true)) return;
        Thread decision = new Thread(VectorSupport::available, "fusedopt-vector-support");
        decision.setDaemon(true);
        decision.start();
    }

    /**
     * The most threads an engine may use: 4 per available processor. A step is split into equal
     * chunks, one share per thread, and waits for the slowest; threads beyond the cores only take
     * turns on them (each an OS thread with its own stack), so more than a few per core is a
     * mistake (10,000 for 10), not a setting. Four per core leaves room for a processor count that
     * a container's CPU quota understates.
     */
    public static int maxThreads() {
        return 4 * Runtime.getRuntime().availableProcessors();
    }

    /**
     * Refuses a thread count outside [1, {@link #maxThreads()}].
     *
     * @throws IllegalArgumentException naming the count and the bound
     */
    public static void requireThreadCount(int threads) {
        if (threads < 1 || threads > maxThreads()) {
            throw new IllegalArgumentException("CPU threads must be in [1, " + maxThreads() + "] (at most 4 per available"
                    + " processor, " + Runtime.getRuntime().availableProcessors() + " here: more only take turns on the same"
                    + " cores), got " + threads);
        }
    }

    /** Whether updates use the Vector API in this JVM, and if not, why (see {@link VectorSupport}). */
    public static String vectorSupport() {
        return VectorSupport.reason();
    }

    @Override
    public Backend backend() {
        return Backend.CPU_FAST;
    }

    /**
     * The cores, what the Vector API gives in this JVM (the memory kinds it vectorizes, with the
     * access to direct buffers from JDK 19 on, or why the loops run), and once a step is prepared, which kernels its
     * tensors run, for example {@code CPU fast (2 of 2 cores; Vector API, 256-bit vectors,
     * MemorySegment access; vectors for allocated, float[] or heap FloatBuffer, direct FloatBuffer;
     * step: vectors for 2 of 2 tensors (memory: allocated, float[] or heap FloatBuffer))}.
     */
    @Override
    public synchronized String description() {
        return "CPU fast (" + threads + " of " + Runtime.getRuntime().availableProcessors() + " cores; "
                + (VectorSupport.available() ? VectorSupport.reason() : "scalar loops: " + VectorSupport.reason())
                + (preparedPaths == null ? "" : "; step: " + preparedPaths) + ")";
    }

    @Override
    public synchronized AbstractTensorBuffer allocate(long length, Precision precision, float initialValue) {
        ensureOpen();
        if (length < 0) throw new IllegalArgumentException("length must be >= 0, got " + length);
        return own(SmallTensorArena.holds(length)
                ? BlockedHostBuffer.carve(this, smallTensors, length, precision, initialValue, blockShift)
                : BlockedHostBuffer.allocate(this, length, precision, initialValue, blockShift));
    }

    @Override
    public synchronized AbstractTensorBuffer wrapHost(FloatBuffer buffer) {
        ensureOpen();
        checkWrappable(buffer);
        return BlockedHostBuffer.wrap(this, buffer);
    }

    @Override
    public synchronized StepProgram prepare(List<KernelBatch> batches, GroupTable groups) {
        ensureOpen();
        if (team == null) team = new WorkerTeam(threads);
        FastStepProgram program = new FastStepProgram(batches, groups, b -> host(b, BlockedHostBuffer.class), team,
                VectorSupport.available());
        preparedPaths = program.pathSummary();
        return program;
    }

    @Override
    void closeResources() {
        if (team != null) team.close();
    }
}
