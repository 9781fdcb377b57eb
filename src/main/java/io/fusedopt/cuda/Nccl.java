package io.fusedopt.cuda;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.IntByReference;
import com.sun.jna.ptr.PointerByReference;
import io.fusedopt.CudaException;
import java.util.List;

/**
 * NCCL's C API (NCCL 2, {@code libnccl.so.2}) through JNA: the collectives that sharded optimizer
 * state needs across GPUs (docs/sharding.md). fusedopt binds the dozen functions itself, by name,
 * with JNA (an optional dependency) instead of through JavaCPP's CUDA presets: no second CUDA
 * binding beside JCuda, and no bundled NCCL of hundreds of MB; the user's NCCL is loaded (pip's
 * {@code nvidia-nccl-cu12} or {@code -cu13}, or a system one, on the library path). NCCL runs in
 * the CUDA runtime's current context, which is the engine's primary context (JCuda's and NCCL's
 * work share it and the engine's stream). On the CUDA emulator, {@code libnccl.so.2} is its test
 * double ({@code src/test/cuda-emulator/nccl.cpp}), whose ranks are threads of one JVM on the
 * emulated devices.
 *
 * <p>Used by {@link NcclCommunicator}, the ranks of {@link io.fusedopt.ShardedOptimizer} on GPUs.
 */
final class Nccl {
    private Nccl() {}

    /** ncclDataType_t. */
    enum DataType {
        INT8(0, 1), UINT8(1, 1), INT64(4, 8), FLOAT16(6, 2), FLOAT32(7, 4), FLOAT64(8, 8), BFLOAT16(9, 2);

        final int code;
        final int bytes;

        DataType(int code, int bytes) {
            this.code = code;
            this.bytes = bytes;
        }
    }

    /** ncclRedOp_t: the reductions fusedopt uses. */
    enum ReduceOp {
        SUM(0), AVG(4);

        final int code;

        ReduceOp(int code) {
            this.code = code;
        }
    }

    /** The bytes of an ncclUniqueId. */
    static final int UNIQUE_ID_BYTES = 128;

    /** ncclUniqueId, passed by value to ncclCommInitRank. */
    @Structure.FieldOrder("internal")
    public static class UniqueId extends Structure {
        public byte[] internal = new byte[UNIQUE_ID_BYTES];

        /** The by-value form. */
        public static final class ByValue extends UniqueId implements Structure.ByValue {}
    }

    /** The functions, as NCCL 2's nccl.h declares them (size_t and pointers as 64-bit values). */
    interface Api extends Library {
        int ncclGetVersion(IntByReference version);

        int ncclGetUniqueId(UniqueId id);

        int ncclCommInitRank(PointerByReference comm, int nranks, UniqueId.ByValue id, int rank);

        int ncclCommDestroy(Pointer comm);

        int ncclCommAbort(Pointer comm);

        int ncclCommCuDevice(Pointer comm, IntByReference device);

        String ncclGetErrorString(int result);

        String ncclGetLastError(Pointer comm);

        int ncclAllGather(long sendbuff, long recvbuff, long sendcount, int datatype, Pointer comm, Pointer stream);

        int ncclBroadcast(long sendbuff, long recvbuff, long count, int datatype, int root, Pointer comm, Pointer stream);

        int ncclAllReduce(long sendbuff, long recvbuff, long count, int datatype, int op, Pointer comm, Pointer stream);

        int ncclReduceScatter(long sendbuff, long recvbuff, long recvcount, int datatype, int op, Pointer comm, Pointer stream);
    }

    private static final class Holder {
        static final Api API;
        static final NcclSupport.Status STATUS;

        static {
            Api api = null;
            NcclSupport.Status status;
            CudaProbe.Result cuda = CudaProbe.result();
            if (!cuda.available()) {
                status = new NcclSupport.Status(false, "NCCL is unavailable because CUDA is: " + cuda.reason());
            } else {
                try {
                    Class.forName("com.sun.jna.Native", false, Nccl.class.getClassLoader());
                    api = Native.load("libnccl.so.2", Api.class); // the file name: the ABI of NCCL 2
                    IntByReference version = new IntByReference();
                    int r = api.ncclGetVersion(version);
                    status = r == 0
                            ? new NcclSupport.Status(true, "libnccl.so.2, NCCL " + versionText(version.getValue())
                                    + (cuda.emulator() ? " (the CUDA emulator's NCCL double, ranks as threads of one JVM)" : ""))
                            : new NcclSupport.Status(false, "ncclGetVersion failed: " + api.ncclGetErrorString(r));
                } catch (ClassNotFoundException e) {
                    status = new NcclSupport.Status(false, "NCCL is unavailable: net.java.dev.jna:jna is not on the classpath (it is an optional"
                            + " dependency)");
                } catch (UnsatisfiedLinkError e) {
                    status = new NcclSupport.Status(false, "NCCL is unavailable: libnccl.so.2 was not found on the library path (install"
                            + " NCCL 2, for example pip's nvidia-nccl-cu12, and put its lib directory on LD_LIBRARY_PATH): " + e.getMessage());
                }
                if (!status.available()) api = null;
            }
            API = api;
            STATUS = status;
        }
    }

    /** Whether NCCL loads here, decided on the first call ({@link NcclSupport#status()}). */
    static NcclSupport.Status status() {
        return Holder.STATUS;
    }

    /** NCCL's version code (major * 10000 + minor * 100 + patch) as "2.27.7". */
    static String versionText(int code) {
        return code / 10000 + "." + code / 100 % 100 + "." + code % 100;
    }

    private static Api api() {
        NcclSupport.Status status = status();
        if (!status.available()) throw new io.fusedopt.BackendUnavailableException(status.reason());
        return Holder.API;
    }

    /** A new unique id, to hand to every rank of a new world (out of band: the ranks' own channel). */
    static byte[] uniqueId() {
        UniqueId id = new UniqueId();
        check(api().ncclGetUniqueId(id), "ncclGetUniqueId", null);
        id.read();
        return id.internal.clone();
    }

    /** Throws {@link CudaException} naming the call, NCCL's result and its last error unless {@code result} is ncclSuccess. */
    static void check(int result, String call, Pointer comm) {
        if (result == 0) return;
        Api api = Holder.API;
        String last = api == null ? "" : api.ncclGetLastError(comm);
        throw new CudaException(call, result, resultName(result),
                (api == null ? "" : api.ncclGetErrorString(result)) + (last == null || last.isEmpty() ? "" : "; " + last));
    }

    /** ncclResult_t's names. */
    static String resultName(int result) {
        List<String> names = List.of("ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError",
                "ncclInvalidArgument", "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress");
        return result >= 0 && result < names.size() ? names.get(result) : "ncclResult " + result;
    }

    /**
     * One rank's NCCL communicator, in an engine's primary context, its collectives queued on the
     * engine's stream (device addresses of that device; counts in elements).
     */
    static final class Communicator implements AutoCloseable {
        private final CudaEngine engine;
        private final Pointer comm;
        private final Pointer stream;
        private final int rank;
        private final int worldSize;
        private boolean closed;

        /**
         * Joins the world of {@code uniqueId} as {@code rank} of {@code worldSize}: waits until every
         * rank has joined (ncclCommInitRank).
         *
         * @throws IllegalArgumentException for a world size below 1, a rank outside it, or an id
         *     that is not {@link #UNIQUE_ID_BYTES} bytes
         */
        Communicator(CudaEngine engine, int worldSize, int rank, byte[] uniqueId) {
            if (worldSize < 1) throw new IllegalArgumentException("the world size must be at least 1, got " + worldSize);
            if (rank < 0 || rank >= worldSize) throw new IllegalArgumentException("rank " + rank + " is outside [0, " + worldSize + ")");
            if (uniqueId == null || uniqueId.length != UNIQUE_ID_BYTES) {
                throw new IllegalArgumentException("an NCCL unique id has " + UNIQUE_ID_BYTES + " bytes");
            }
            Api api = api();
            this.engine = engine;
            this.rank = rank;
            this.worldSize = worldSize;
            this.stream = new Pointer(engine.streamHandle());
            UniqueId.ByValue id = new UniqueId.ByValue();
            System.arraycopy(uniqueId, 0, id.internal, 0, UNIQUE_ID_BYTES);
            PointerByReference out = new PointerByReference();
            engine.makeCurrent();
            check(api.ncclCommInitRank(out, worldSize, id, rank), "ncclCommInitRank(rank " + rank + " of " + worldSize + ")", null);
            this.comm = out.getValue();
        }

        int rank() {
            return rank;
        }

        int worldSize() {
            return worldSize;
        }

        /** The CUDA device ordinal NCCL bound this rank to (ncclCommCuDevice). */
        int device() {
            IntByReference device = new IntByReference();
            check(api().ncclCommCuDevice(open(), device), "ncclCommCuDevice", comm);
            return device.getValue();
        }

        /** recv[r * count + i] = rank r's send[i]. */
        void allGather(long send, long recv, long count, DataType type) {
            allGather(send, recv, count, type, Pointer.nativeValue(stream));
        }

        /** {@link #allGather(long, long, long, DataType)} on the stream {@code streamHandle} (a capturing one). */
        void allGather(long send, long recv, long count, DataType type, long streamHandle) {
            check(api().ncclAllGather(send, recv, count, type.code, open(), new Pointer(streamHandle)),
                    "ncclAllGather(" + count + " " + type + ")", comm);
        }

        /** recv[i] = rank root's send[i] on every rank. */
        void broadcast(long send, long recv, long count, DataType type, int root) {
            broadcast(send, recv, count, type, root, Pointer.nativeValue(stream));
        }

        /** {@link #broadcast(long, long, long, DataType, int)} on the stream {@code streamHandle} (a capturing one). */
        void broadcast(long send, long recv, long count, DataType type, int root, long streamHandle) {
            check(api().ncclBroadcast(send, recv, count, type.code, root, open(), new Pointer(streamHandle)),
                    "ncclBroadcast(" + count + " " + type + ", root " + root + ")", comm);
        }

        /** recv[i] = the reduction of every rank's send[i]. */
        void allReduce(long send, long recv, long count, DataType type, ReduceOp op) {
            check(api().ncclAllReduce(send, recv, count, type.code, op.code, open(), stream),
                    "ncclAllReduce(" + count + " " + type + ", " + op + ")", comm);
        }

        /** recv[i] = the reduction of every rank's send[rank * count + i]. */
        void reduceScatter(long send, long recv, long count, DataType type, ReduceOp op) {
            check(api().ncclReduceScatter(send, recv, count, type.code, op.code, open(), stream),
                    "ncclReduceScatter(" + count + " " + type + ", " + op + ")", comm);
        }

        private Pointer open() {
            if (closed) throw new IllegalStateException("the NCCL communicator is closed");
            engine.makeCurrent();
            return comm;
        }

        /**
         * Aborts the communicator (ncclCommAbort): collectives in flight end, failing, and it is
         * freed; every rank's later collectives fail. Idempotent with {@link #close}.
         */
        void abort() {
            if (closed) return;
            closed = true;
            engine.makeCurrent();
            check(api().ncclCommAbort(comm), "ncclCommAbort", null);
        }

        /** Destroys the communicator (after its queued collectives, as ncclCommDestroy does). Idempotent. */
        @Override
        public void close() {
            if (closed) return;
            closed = true;
            engine.makeCurrent();
            check(api().ncclCommDestroy(comm), "ncclCommDestroy", null);
        }
    }
}
