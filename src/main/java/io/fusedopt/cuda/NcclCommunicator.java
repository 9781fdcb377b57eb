package io.fusedopt.cuda;

import io.fusedopt.CommunicationException;
import io.fusedopt.Communicator;
import io.fusedopt.Precision;
import io.fusedopt.TensorBuffer;
import io.fusedopt.internal.StepProgram;
import java.time.Duration;
import java.util.List;
import jcuda.Pointer;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * The ranks of a sharded optimizer on GPUs ({@link io.fusedopt.ShardedOptimizer} on the CUDA
 * backend): one rank per GPU, over NCCL ({@link NcclSupport}). The optimizer's gradient statistics
 * and params go through NCCL collectives queued on its stream; {@link #allGather} (the
 * registration check, the checkpoints' agreement) stages bytes through the device.
 *
 * <p>Build every rank's with the same {@link #uniqueId()}, handed from one rank to the others
 * over the caller's own channel (every process of a multi-process job), and with the device and
 * stream its optimizer will use ({@link io.fusedopt.DeviceOptimizer.Builder#optDeviceOrdinal},
 * {@link io.fusedopt.DeviceOptimizer.Builder#optCudaStream}): the constructor waits until every
 * rank has joined. NCCL has no timeout of its own, so this rank bounds its own wait: an exchange, and
 * a sharded step, wait for their collectives at most the timeout ({@link #DEFAULT_TIMEOUT}, or the
 * one given), then abort the communicator and fail with a {@link CommunicationException} instead of
 * hanging on a rank that died ({@link #awaitCollectives}).
 */
public final class NcclCommunicator implements Communicator, AutoCloseable {
    private final CudaEngine engine;
    private final Nccl.Communicator nccl;
    private final int deviceOrdinal;
    private final long streamHandle;
    private final Duration timeout;

    /** How long a rank waits for its collectives by default: PyTorch's default process-group timeout. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(30);

    /**
     * Joins the world of {@code uniqueId} as {@code rank} of {@code worldSize} on CUDA device
     * {@code deviceOrdinal}, its collectives on {@code streamHandle} (0: the legacy default stream).
     *
     * @throws io.fusedopt.BackendUnavailableException where CUDA or NCCL cannot run (the reason in one sentence)
     * @throws IllegalArgumentException for a world size below 1, a rank outside it, a bad id or device
     */
    public NcclCommunicator(int deviceOrdinal, long streamHandle, int worldSize, int rank, byte[] uniqueId) {
        this(deviceOrdinal, streamHandle, worldSize, rank, uniqueId, DEFAULT_TIMEOUT);
    }

    /**
     * As {@link #NcclCommunicator(int, long, int, int, byte[])}, waiting at most {@code timeout} for
     * the collectives of an exchange or a step ({@link #awaitCollectives}) before aborting.
     *
     * @throws IllegalArgumentException also for a timeout not above zero
     */
    public NcclCommunicator(int deviceOrdinal, long streamHandle, int worldSize, int rank, byte[] uniqueId, Duration timeout) {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("the timeout must be more than zero, got " + timeout);
        }
        this.timeout = timeout;
        if (worldSize < 1) throw new IllegalArgumentException("the world size must be at least 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize) throw new IllegalArgumentException("rank " + rank + " is outside [0, " + worldSize + ")");
        CudaEngine opened = new CudaEngine(deviceOrdinal, streamHandle);
        try {
            nccl = new Nccl.Communicator(opened, worldSize, rank, uniqueId);
        } catch (RuntimeException e) {
            opened.close();
            throw e;
        }
        this.engine = opened;
        this.deviceOrdinal = deviceOrdinal;
        this.streamHandle = streamHandle;
    }

    /** A new unique id for a new world (NCCL's ncclGetUniqueId). */
    public static byte[] uniqueId() {
        return Nccl.uniqueId();
    }

    @Override
    public int rank() {
        return nccl.rank();
    }

    @Override
    public int worldSize() {
        return nccl.worldSize();
    }

    /** The CUDA device of this rank. */
    public int deviceOrdinal() {
        return deviceOrdinal;
    }

    /** The stream of this rank's collectives (0: the legacy default stream). */
    public long streamHandle() {
        return streamHandle;
    }

    /**
     * Every rank's bytes: the lengths, then the bytes padded to the longest, all-gathered through the
     * device. Its four buffers come from the engine's tracked allocations and go back through
     * {@code freeTable}, which forgets them too (a plain free left them for the engine to free a
     * second time at close: the first H200 run logged each as "cuMemFree failed: invalid argument").
     */
    @Override
    public synchronized byte[][] allGather(byte[] data) {
        int w = worldSize();
        long[] lengths = new long[w];
        long lengthsOnDevice = engine.upload(Pointer.to(new long[] {data.length}), Long.BYTES, "all-gather length");
        long allLengths = engine.allocateWorkspace((long) w * Long.BYTES);
        try {
            nccl.allGather(lengthsOnDevice, allLengths, 1, Nccl.DataType.INT64);
            download(allLengths, Pointer.to(lengths), (long) w * Long.BYTES);
        } finally {
            engine.freeTable(lengthsOnDevice);
            engine.freeTable(allLengths);
        }
        long longest = 0;
        for (long l : lengths) longest = Math.max(longest, l);
        byte[] padded = java.util.Arrays.copyOf(data, (int) Math.max(1, longest));
        long send = engine.upload(Pointer.to(padded), padded.length, "all-gather bytes");
        long receive = engine.allocateWorkspace((long) w * padded.length);
        byte[] all = new byte[w * padded.length];
        try {
            nccl.allGather(send, receive, padded.length, Nccl.DataType.UINT8);
            download(receive, Pointer.to(all), all.length);
        } finally {
            engine.freeTable(send);
            engine.freeTable(receive);
        }
        byte[][] out = new byte[w][];
        for (int r = 0; r < w; r++) out[r] = java.util.Arrays.copyOfRange(all, r * padded.length, r * padded.length + (int) lengths[r]);
        return out;
    }

    private void download(long address, Pointer host, long bytes) {
        awaitCollectives();
        Driver.check(JCudaDriver.cuMemcpyDtoH(host, Driver.pointerAt(address), bytes), "cuMemcpyDtoH(all-gather)");
    }

    /**
     * The gradient statistics' exchange of a sharded step on the device, for partial sums whose
     * owners, in the global registration order, are {@code chunkOwners}: each rank sends its own,
     * in that order, and the step program puts all of them in that order for the finalize kernel.
     * For {@link io.fusedopt.ShardedOptimizer}; the step program of this rank's optimizer runs it.
     *
     * @throws IllegalArgumentException for an owner outside [0, world size)
     */
    public StepProgram.StatisticsExchange statisticsExchange(int[] chunkOwners) {
        return NcclStatisticsExchange.of(nccl, chunkOwners);
    }

    /**
     * Each tensor's param from its owner to every rank (an NCCL broadcast of each, in place),
     * queued on the stream after the step.
     *
     * @throws IllegalArgumentException for a param that is not device memory of the CUDA backend
     */
    public void broadcastParams(List<TensorBuffer> params, int[] owners) {
        broadcastParams(params, owners, engine.streamHandle());
    }

    /**
     * {@link #broadcastParams(List, int[])} on the stream {@code streamHandle}: a stream capturing a
     * sharded step ({@link io.fusedopt.ShardedOptimizer#captureStep}).
     */
    public void broadcastParams(List<TensorBuffer> params, int[] owners, long streamHandle) {
        for (int t = 0; t < params.size(); t++) {
            if (!(params.get(t) instanceof DeviceBuffer buffer)) {
                throw new IllegalArgumentException("param " + t + " is not device memory of the CUDA backend: " + params.get(t));
            }
            if (buffer.length() == 0) continue;
            nccl.broadcast(buffer.address(), buffer.address(), buffer.length(), dataType(buffer.precision()), owners[t], streamHandle);
        }
    }

    private static Nccl.DataType dataType(Precision precision) {
        return switch (precision) {
            case FP32 -> Nccl.DataType.FLOAT32;
            case BF16 -> Nccl.DataType.BFLOAT16;
            case FP16 -> Nccl.DataType.FLOAT16;
        };
    }

    /**
     * Waits until everything queued on this rank's stream (its collectives among it) is done, at
     * most the timeout: NCCL has no timeout of its own, and a rank that died leaves the others'
     * collectives waiting forever. Past the timeout the communicator is aborted (its collectives in
     * flight fail, and the device's context with them, as after a faulting kernel) and the world
     * cannot be used any more.
     *
     * @throws CommunicationException past the timeout, naming this rank
     * @throws io.fusedopt.CudaException when the queued work failed
     */
    public synchronized void awaitCollectives() {
        long deadline = System.nanoTime() + timeout.toNanos();
        long pause = 20_000; // ns: short steps first, then up to a millisecond
        while (true) {
            int status = JCudaDriver.cuStreamQuery(engine.stream());
            if (status != CUresult.CUDA_ERROR_NOT_READY) {
                Driver.check(status, "cuStreamQuery");
                return;
            }
            if (System.nanoTime() > deadline) {
                nccl.abort();
                throw new CommunicationException("rank " + rank() + " waited " + timeout + " for its NCCL collectives: a rank failed,"
                        + " stopped or hangs; the communicator was aborted and the world cannot be used any more");
            }
            java.util.concurrent.locks.LockSupport.parkNanos(pause);
            pause = Math.min(1_000_000, pause * 2);
        }
    }

    /** Destroys the NCCL communicator and releases the device. Idempotent. */
    @Override
    public synchronized void close() {
        if (engine.isClosed()) return;
        try {
            nccl.close();
        } finally {
            engine.close();
        }
    }
}
