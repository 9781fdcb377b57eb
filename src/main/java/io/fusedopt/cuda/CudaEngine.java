package io.fusedopt.cuda;

import io.fusedopt.Backend;
import io.fusedopt.BackendUnavailableException;
import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.OwnedBuffers;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepProgram;
import java.lang.System.Logger.Level;
import java.nio.FloatBuffer;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmemorytype;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * The CUDA backend on one device.
 *
 * <p>Context and threads: the engine retains the device's primary context (the one the CUDA
 * runtime, and so PyTorch or any runtime-API library in the process, also uses) and makes it
 * current on the calling thread at the start of every operation, so any thread may call it; the
 * optimizer serializes calls. It never pushes or pops contexts, and leaves a thread's current
 * context set to the primary context.
 *
 * <p>Stream: every kernel and copy goes to one stream, the caller's when given (a CUstream of this
 * device's primary context), else the legacy default stream through its explicit handle
 * CU_STREAM_LEGACY, which orders the work after the caller's earlier default-stream work. Nothing
 * in a step waits for the device; copies out of a buffer, {@link #synchronize()} and
 * {@link #close()} wait for that stream only.
 */
public final class CudaEngine implements Engine {
    private static final System.Logger LOG = System.getLogger("io.fusedopt");
    static final int BLOCK_SIZE = 256;
    /** Resident blocks per SM worth launching for a grid-stride loop; more only adds scheduling. */
    private static final int BLOCKS_PER_SM = 8;

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final int ordinal;
    private final String description;
    /** Where all work goes: the caller's stream or CU_STREAM_LEGACY, never null. */
    private final CUstream stream;
    /** The stream's raw handle (CU_STREAM_LEGACY for the legacy default stream), for libraries bound outside JCuda (NCCL). */
    private final long streamHandle;
    private final int maxBlocks;
    private final KernelModules modules;
    private final OwnedBuffers owned = new OwnedBuffers();
    /** Device memory of prepared step programs (tables, control blocks), freed at close at the latest. */
    private final Set<Long> tables = new LinkedHashSet<>();
    private volatile boolean closed;
    /** See {@link #engineLaunches()}. */
    private final java.util.concurrent.atomic.AtomicLong launches = new java.util.concurrent.atomic.AtomicLong();
    /** This engine's cuBLAS handle, created on first use (cuBLAS is optional); null until then. */
    private CublasGemm cublas;

    /**
     * Opens device {@code ordinal}.
     *
     * @throws BackendUnavailableException when CUDA cannot be used here (the message says why)
     * @throws IllegalArgumentException when the ordinal names no device
     */
    public CudaEngine(int ordinal) {
        this(ordinal, 0);
    }

    /**
     * Opens device {@code ordinal}, queuing all work on the stream with raw handle
     * {@code streamHandle} (0: the legacy default stream).
     *
     * @throws IllegalArgumentException when the stream does not belong to the device's primary context
     */
    public CudaEngine(int ordinal, long streamHandle) {
        CudaProbe.Result probe = CudaProbe.result();
        if (!probe.available()) {
            throw new BackendUnavailableException("CUDA backend unavailable: " + probe.reason());
        }
        if (ordinal < 0 || ordinal >= probe.deviceCount()) {
            throw new IllegalArgumentException("CUDA device ordinal " + ordinal + " does not exist: this machine has "
                    + probe.deviceCount() + " device(s), ordinals 0 to " + (probe.deviceCount() - 1));
        }
        this.ordinal = ordinal;
        Driver.check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        Driver.check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain(" + ordinal + ")");
        try {
            makeCurrent();
            int major = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
            int minor = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
            int sms = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
            description = "CUDA device " + ordinal + ": " + Driver.deviceName(device) + " (sm_" + major + minor + ", " + sms
                    + " SMs, driver CUDA " + DriverProbe.cudaVersion(probe.driverCudaVersion()) + ")";
            maxBlocks = sms * BLOCKS_PER_SM;
            stream = Streams.of(streamHandle);
            this.streamHandle = streamHandle == 0 ? Streams.LEGACY : streamHandle;
            if (streamHandle != 0) {
                CUcontext owner = new CUcontext();
                int result = JCudaDriver.cuStreamGetCtx(stream, owner);
                if (result != 0 || !owner.equals(context)) {
                    throw new IllegalArgumentException("CUstream 0x" + Long.toHexString(streamHandle)
                            + " does not belong to the primary context of CUDA device " + ordinal
                            + (result != 0 ? " (cuStreamGetCtx: " + Driver.describe(result) + ")" : ""));
                }
            }
            modules = new KernelModules(context, description);
        } catch (RuntimeException e) {
            JCudaDriver.cuDevicePrimaryCtxRelease(device);
            throw e;
        }
    }

    /** The loaded kernels (for diagnostics beyond the update kernels). */
    KernelModules modules() {
        return modules;
    }

    /** Queues a one-dimensional grid-stride kernel over {@code n} elements on this engine's stream. */
    void launch(CUfunction function, long n, Pointer kernelParams, String call) {
        if (n == 0) return;
        makeCurrent();
        int grid = (int) Math.max(1, Math.min((n + BLOCK_SIZE - 1) / BLOCK_SIZE, maxBlocks));
        Driver.check(JCudaDriver.cuLaunchKernel(function, grid, 1, 1, BLOCK_SIZE, 1, 1, 0, stream, kernelParams, null), call);
        launches.incrementAndGet();
    }

    /** Queues a kernel whose blocks take {@code chunks} chunks in turn (grid-stride over chunks) on this engine's stream. */
    void launchOverChunks(CUfunction function, int chunks, Pointer kernelParams, String call) {
        makeCurrent();
        Driver.check(JCudaDriver.cuLaunchKernel(function, gridFor(chunks), 1, 1, BLOCK_SIZE, 1, 1, 0, stream, kernelParams, null),
                call);
        launches.incrementAndGet();
    }

    /**
     * Kernel launches queued through this engine's own launch methods (zero fills, diagnostics);
     * step programs launch on their own and are not counted. For tests that check how many
     * launches an operation costs.
     */
    public long engineLaunches() {
        return launches.get();
    }

    /**
     * This engine's cuBLAS GEMMs, on a handle created on the first call, which must not come
     * during a stream capture (cublasCreate allocates device memory).
     *
     * @throws io.fusedopt.BackendUnavailableException where cuBLAS cannot load (CublasSupport says why)
     */
    synchronized CublasGemm cublas() {
        if (closed) throw new IllegalStateException("the optimizer is closed");
        if (cublas == null) cublas = new CublasGemm(this);
        return cublas;
    }

    /** Null where {@link CublasSupport} loaded cuBLAS, else its reason: one sentence. */
    @Override
    public String cublasUnavailableReason() {
        CublasSupport.Status status = CublasSupport.status();
        return status.available() ? null : "Muon's fast mode is unavailable here: " + status.reason();
    }

    /** Makes this engine's primary context current on the calling thread. */
    void makeCurrent() {
        if (closed) throw new IllegalStateException("the optimizer is closed");
        Driver.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    @Override
    public Backend backend() {
        return Backend.CUDA;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public synchronized AbstractTensorBuffer allocate(long length, Precision precision, float initialValue) {
        int size = precision.bytes();
        if (length < 0 || length > Long.MAX_VALUE / size) {
            throw new IllegalArgumentException("length must be in [0, " + Long.MAX_VALUE / size + "], got " + length);
        }
        makeCurrent();
        long address = length == 0 ? 0 : Driver.allocate(length * size);
        DeviceBuffer buffer = new DeviceBuffer(this, address, length, precision, true);
        if (length > 0) {
            try {
                int result = precision == Precision.FP32
                        ? JCudaDriver.cuMemsetD32Async(Driver.pointerAt(address), Float.floatToRawIntBits(initialValue), length, stream)
                        : JCudaDriver.cuMemsetD16Async(Driver.pointerAt(address), Conversions.narrow(precision, initialValue), length,
                                stream);
                Driver.check(result, "cuMemsetAsync(" + length + " " + precision + ")");
            } catch (RuntimeException e) {
                free(address);
                throw e;
            }
        }
        owned.add(buffer);
        return buffer;
    }

    @Override
    public synchronized AbstractTensorBuffer allocateQuantized(long length, CodeMap map, float initialValue) {
        if (length < 0 || length > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("a quantized state holds 0 to " + Integer.MAX_VALUE + " elements, got " + length);
        }
        makeCurrent();
        long address = length == 0 ? 0 : Driver.allocate(DeviceQuantizedBuffer.allocationBytes(length));
        DeviceQuantizedBuffer buffer = new DeviceQuantizedBuffer(this, address, length, map);
        try {
            buffer.initialize(initialValue);
        } catch (RuntimeException e) {
            if (address != 0) free(address);
            throw e;
        }
        owned.add(buffer);
        return buffer;
    }

    @Override
    public synchronized AbstractTensorBuffer wrapDevicePointer(long address, long length, Precision precision) {
        makeCurrent();
        int size = precision.bytes();
        if (address == 0) throw new IllegalArgumentException("device pointer must not be null (0)");
        if (length < 0 || length > Long.MAX_VALUE / size) {
            throw new IllegalArgumentException("length must be >= 0, got " + length);
        }
        if (address % size != 0) {
            throw new IllegalArgumentException("device pointer 0x" + Long.toHexString(address) + " is not aligned to " + size
                    + " bytes (" + precision + ")");
        }
        checkDeviceRange(address, length * size);
        return new DeviceBuffer(this, address, length, precision, false);
    }

    /**
     * Refuses host pointers, memory of another device (this device's kernels would fault on it,
     * which ruins the context) and ranges that run past the end of the caller's allocation.
     */
    private void checkDeviceRange(long address, long bytes) {
        int[] memoryType = new int[1];
        int result = JCudaDriver.cuPointerGetAttribute(Pointer.to(memoryType),
                CUpointer_attribute.CU_POINTER_ATTRIBUTE_MEMORY_TYPE, Driver.pointerAt(address));
        if (result != 0 || memoryType[0] != CUmemorytype.CU_MEMORYTYPE_DEVICE) {
            throw new IllegalArgumentException("0x" + Long.toHexString(address) + " is not device memory known to the CUDA driver");
        }
        int[] owner = new int[1];
        Driver.check(JCudaDriver.cuPointerGetAttribute(Pointer.to(owner), CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                Driver.pointerAt(address)), "cuPointerGetAttribute(DEVICE_ORDINAL)");
        if (owner[0] != ordinal) {
            throw new IllegalArgumentException("0x" + Long.toHexString(address) + " is memory of CUDA device " + owner[0]
                    + ", but this optimizer runs on CUDA device " + ordinal);
        }
        AddressablePointer base = new AddressablePointer();
        long[] size = new long[1];
        Driver.check(JCudaDriver.cuMemGetAddressRange(base, size, Driver.pointerAt(address)), "cuMemGetAddressRange");
        long baseAddress = base.address();
        if (address - baseAddress > size[0] - bytes) {
            throw new IllegalArgumentException("range of " + bytes + " bytes at 0x" + Long.toHexString(address)
                    + " runs past the end of its allocation (" + size[0] + " bytes at 0x" + Long.toHexString(baseAddress) + ")");
        }
    }

    @Override
    public AbstractTensorBuffer wrapHost(FloatBuffer buffer) {
        throw new UnsupportedOperationException("the CUDA backend updates device memory only: allocate a device buffer"
                + " (DeviceOptimizer.allocate) and copy host data into it, or wrap a device pointer you own");
    }

    @Override
    public synchronized StepProgram prepare(List<KernelBatch> batches, GroupTable groups) {
        makeCurrent();
        return new CudaStepProgram(this, batches, groups, this::address);
    }

    @Override
    public synchronized ZeroFill prepareZeroFill(List<AbstractTensorBuffer> buffers) {
        makeCurrent();
        return new CudaZeroFill(this, buffers, b -> device(b).address());
    }

    /** Copies bytes into new device memory that this engine frees when it closes (or at {@link #freeTable}). */
    long upload(Pointer host, long bytes, String what) {
        long address = Driver.allocate(Math.max(bytes, 1));
        tables.add(address);
        if (bytes > 0) {
            Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(address), host, bytes, stream),
                    "cuMemcpyHtoDAsync(" + what + ", " + bytes + " bytes)");
        }
        return address;
    }

    /**
     * New device memory of {@code bytes} with no contents, which this engine frees when it closes
     * (or at {@link #freeTable}): a step program's workspace, which its kernels write before they read.
     */
    long allocateWorkspace(long bytes) {
        long address = Driver.allocate(Math.max(bytes, 1));
        tables.add(address);
        return address;
    }

    /**
     * The control block (FoControl) of this optimizer's step programs, one program at a time:
     * allocated by the first and kept until the engine closes, so that its address, handed to
     * callers for the loss scale, stays valid when a program is rebuilt.
     */
    private long controlBlock;

    /** The address of the control block, allocated (zeroed) at the first call. */
    public synchronized long controlBlockAddress() {
        if (controlBlock == 0) controlBlock = upload(Pointer.to(new byte[StepControl.BYTES]), StepControl.BYTES, "control block");
        return controlBlock;
    }

    /** The code maps of the _q8 entry points (DeviceSegmentTable.codeMaps), uploaded once per engine. */
    private long codeMaps;

    /** The address of the code maps' table, uploaded at the first call. */
    synchronized long codeMapsAddress() {
        if (codeMaps == 0) {
            float[] maps = DeviceSegmentTable.codeMaps();
            codeMaps = upload(Pointer.to(maps), (long) maps.length * Float.BYTES, "code maps");
        }
        return codeMaps;
    }

    /** Frees memory from {@link #upload} before the engine closes. */
    synchronized void freeTable(long address) {
        if (tables.remove(address)) free(address);
    }

    /** Blocks per grid for {@code units} independent pieces of work (chunks). */
    int gridFor(long units) {
        return (int) Math.max(1, Math.min(units, maxBlocks));
    }

    /** Where a buffer of this engine begins in device memory (a quantized state: its codes). */
    private long address(AbstractTensorBuffer buffer) {
        if (buffer instanceof DeviceQuantizedBuffer q && q.owner() == this) return q.address();
        return device(buffer).address();
    }

    private DeviceBuffer device(AbstractTensorBuffer buffer) {
        if (!(buffer instanceof DeviceBuffer d) || d.owner() != this) {
            throw new IllegalArgumentException("buffer does not belong to this CUDA optimizer"
                    + (buffer.isDevice() ? " (it belongs to another optimizer)" : " (it is host memory)"));
        }
        return d;
    }

    @Override
    public void synchronize() {
        makeCurrent();
        Driver.check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
    }

    /** {@link #stream()}'s raw handle: CU_STREAM_LEGACY (1) for the legacy default stream. */
    long streamHandle() {
        return streamHandle;
    }

    /** The stream all work goes to (CU_STREAM_LEGACY for the legacy default stream; never null). */
    CUstream stream() {
        return stream;
    }

    /**
     * Makes the context current and waits for the stream, returning the CUresult instead of
     * throwing: for callers that are closing, on any thread, with any context current.
     */
    int synchronizeQuietly() {
        int result = JCudaDriver.cuCtxSetCurrent(context);
        return result == 0 ? JCudaDriver.cuStreamSynchronize(stream) : result;
    }

    @Override
    public synchronized long ownedBytes() {
        return owned.bytes();
    }

    @Override
    public boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void onBufferClosed(AbstractTensorBuffer buffer) {
        owned.release(buffer);
    }

    /** Frees device memory; a failure is logged, not thrown, since callers are closing. */
    void free(long address) {
        int result = JCudaDriver.cuCtxSetCurrent(context);
        if (result == 0) result = JCudaDriver.cuMemFree(Driver.pointerAt(address));
        if (result != 0) {
            LOG.log(Level.WARNING, "cuMemFree(0x" + Long.toHexString(address) + ") failed: " + Driver.describe(result));
        }
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        int sync = synchronizeQuietly(); // queued updates may still use the buffers
        if (sync != 0) {
            LOG.log(Level.WARNING, "closing " + description + ": synchronize failed: " + Driver.describe(sync));
        }
        owned.releaseAll();
        tables.forEach(this::free);
        tables.clear();
        modules.close();
        if (cublas != null) {
            try {
                cublas.close();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "closing " + description + ": " + e.getMessage());
            }
        }
        closed = true;
        JCudaDriver.cuDevicePrimaryCtxRelease(device);
    }

    private int attribute(int attribute) {
        int[] value = new int[1];
        Driver.check(JCudaDriver.cuDeviceGetAttribute(value, attribute, device), "cuDeviceGetAttribute(" + attribute + ")");
        return value[0];
    }
}
