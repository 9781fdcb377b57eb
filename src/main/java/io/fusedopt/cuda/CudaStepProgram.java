package io.fusedopt.cuda;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.FactoredKernel;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepProgram;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.TensorOperands;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.function.ToLongFunction;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;

/**
 * A step on the device with no host round trip: the control block, the group tables, the segment
 * tables and the partial sums live in device memory, so every kernel argument is fixed here and a
 * run queues the same launches every time (kernels/control.cu, then one update launch per batch;
 * a layer-wise or matrix batch runs its passes before its update).
 * The host writes only what changed (hyper-parameters, control inputs), before the launches and
 * on the same stream.
 */
final class CudaStepProgram implements StepProgram {
    private static final int CU_STREAM_NON_BLOCKING = 1;

    private final CudaEngine engine;
    private final GroupTable groups;
    private final List<Long> memory = new ArrayList<>();
    private final long control;
    private final long hyper;
    private final long groupInfo;
    private final long segments;
    private final List<Launch> statsLaunches = new ArrayList<>();
    /** This program's partial sums (one per chunk of its tensors, in registration order) and their count. */
    private final long partials;
    private final int ownChunks;
    private final long entrySteps;
    private final long stepFlags;
    private Launch finalizeLaunch;
    /** The exchange set last (null: none). */
    private StatisticsExchange statisticsExchange;
    /** A sharded rank's exchange of the partial sums (setStatisticsExchange), queued after the statistics; empty when unsharded. */
    private final List<Queued> exchangeWork = new ArrayList<>();
    private final List<Queued> updateLaunches = new ArrayList<>();
    /** The host's copy of the control inputs; uploaded before the next run when changed. */
    private final StepControl inputs = new StepControl();
    private boolean groupsDirty;
    private boolean inputsDirty;
    private boolean closed;

    /** sizeof(FoEntryStep) in kernels/fusedopt_common.cuh. */
    static final int ENTRY_STEP_BYTES = 16;

    /** The output tile edge of the Newton-Schulz products, whose blocks have TILE x TILE threads (FO_MATRIX_TILE). */
    static final int MATRIX_TILE = 16;
    /** FO_PRODUCT_GRAM, FO_PRODUCT_SQUARE, FO_PRODUCT_COMBINE in kernels/fusedopt_matrix.cuh. */
    static final int PRODUCT_GRAM = 0, PRODUCT_SQUARE = 1, PRODUCT_COMBINE = 2;
    /** The most blocks a launch's y and z grid dimensions take (CUDA's limit). */
    private static final int MAX_GRID_YZ = 65535;

    /** FO_FAST_ROUND_X, FO_FAST_ROUND_GRAM, FO_FAST_POLYNOMIAL, FO_FAST_COMBINE in kernels/fusedopt_matrix.cuh. */
    static final int FAST_ROUND_X = 0, FAST_ROUND_GRAM = 1, FAST_POLYNOMIAL = 2, FAST_COMBINE = 3;
    /** The most blocks along x of one of fast mode's elementwise passes (they stride over the rest). */
    private static final int FAST_PASS_MAX_BLOCKS = 1024;

    /** Work queued on a stream by every run of the step, in order: a kernel launch or a cuBLAS product. */
    private interface Queued {
        void queue(CUstream stream);
    }

    /** One launch: its grid and block shapes, and its arguments, fixed when the step is prepared. */
    private record Launch(CUfunction function, int gridX, int gridY, int gridZ, int blockX, int blockY, Pointer params, String call)
            implements Queued {
        /** A launch of {@code grid} blocks of {@link GradientStatistics#LANES} threads. */
        Launch(CUfunction function, int grid, Pointer params, String call) {
            this(function, grid, 1, 1, GradientStatistics.LANES, 1, params, call);
        }

        @Override
        public void queue(CUstream stream) {
            Driver.check(JCudaDriver.cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY, 1, 0, stream, params, null), call);
        }
    }

    /** One cuBLAS product {@code C = op(A) op(B)} (alpha 1, beta 0) on fixed device addresses (fast mode). */
    private record Gemm(CublasGemm cublas, CublasGemm.Product product, long a, long b, long c) implements Queued {
        @Override
        public void queue(CUstream stream) {
            cublas.queue(stream, product, a, b, c, 1f, 0f);
        }
    }

    CudaStepProgram(CudaEngine engine, List<KernelBatch> batches, GroupTable groups, ToLongFunction<AbstractTensorBuffer> address) {
        this.engine = engine;
        this.groups = groups;
        try {
            // The engine's one control block, reset for this program (the optimizer then restores its
            // counters and scaler): its address outlives programs (DeviceOptimizer.lossScaleDevicePointer).
            control = engine.controlBlockAddress();
            Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(control), Pointer.to(DeviceSegmentTable.encodeControl(inputs)),
                    StepControl.BYTES, engine.stream()), "cuMemcpyHtoDAsync(control block)");
            int g = groups.count();
            hyper = upload(Pointer.to(groups.hyper()), (long) groups.hyper().length * Float.BYTES, "hyper-parameters");
            int[] info = groups.groupInfo();
            groupInfo = upload(Pointer.to(info), (long) info.length * Integer.BYTES, "group kernels and flags");
            byte[] segmentBytes = groups.segmentTable(); // fixed capacity per group: a new schedule fits in place
            segments = upload(Pointer.to(segmentBytes), segmentBytes.length, "schedule segments");
            // FoEntryStep per entry (own step, lr), written by the finalize kernel before any update reads it.
            entrySteps = upload(Pointer.to(new byte[g * ENTRY_STEP_BYTES]), (long) g * ENTRY_STEP_BYTES, "entry steps");
            stepFlags = upload(Pointer.to(groups.flags()), (long) g * Integer.BYTES, "step flags");

            int totalChunks = 0;
            List<long[]> tables = new ArrayList<>(); // {tensors, chunks, chunkCount}
            List<SegmentTable> segmentTables = new ArrayList<>();
            for (KernelBatch batch : batches) {
                long[] lengths = new long[batch.tensors().size()];
                long[][] addresses = new long[lengths.length][];
                for (int t = 0; t < lengths.length; t++) {
                    lengths[t] = batch.tensors().get(t).param().length();
                    addresses[t] = DeviceSegmentTable.addresses(batch.tensors().get(t), address);
                }
                SegmentTable table = SegmentTable.of(lengths);
                byte[] tensorBytes = DeviceSegmentTable.encodeTensors(batch.tensors(), addresses, batch.mixed() ? 8 : 4);
                byte[] chunkBytes = DeviceSegmentTable.encodeChunks(table);
                long tensors = upload(Pointer.to(tensorBytes), tensorBytes.length, "tensor table");
                long chunks = upload(Pointer.to(chunkBytes), chunkBytes.length, "chunk table");
                tables.add(new long[] {tensors, chunks, table.chunkCount()});
                segmentTables.add(table);
                totalChunks += table.chunkCount();
            }
            partials = upload(Pointer.to(new double[totalChunks]), (long) totalChunks * Double.BYTES, "partial sums");
            ownChunks = totalChunks;
            int[] positions = GradientStatistics.registrationPositions(batches);
            long partialPositions = upload(Pointer.to(positions), (long) positions.length * Integer.BYTES,
                    "partial sum positions");

            KernelModules modules = engine.modules();
            CUfunction stats = modules.function("control", "fusedopt_grad_stats");
            long offset = 0;
            for (int b = 0; b < batches.size(); b++) {
                long[] t = tables.get(b);
                int chunkCount = (int) t[2];
                if (chunkCount == 0) continue;
                KernelBatch batch = batches.get(b);
                statsLaunches.add(new Launch(stats, engine.gridFor(chunkCount), Pointer.to(ptr(t[0]), ptr(t[1]),
                        Pointer.to(new int[] {chunkCount}), ptr(control), ptr(partialPositions + offset * Integer.BYTES), ptr(partials)),
                        "cuLaunchKernel(fusedopt_grad_stats, " + chunkCount + " chunks)"));
                offset += chunkCount;
                String entry = batch.quantized() ? batch.kernel().quantizedEntryPoint()
                        : batch.narrow() ? batch.kernel().narrowEntryPoint()
                        : batch.mixed() ? batch.kernel().mixedEntryPoint() : batch.kernel().entryPoint();
                CUfunction update = batch.quantized() ? modules.quantizedFunction(batch.kernel())
                        : batch.narrow() ? modules.narrowFunction(batch.kernel()) : modules.function(batch.kernel(), batch.mixed());
                String call = "cuLaunchKernel(" + entry + ", " + batch.tensors().size() + " tensors, " + chunkCount + " chunks)";
                if (batch.kernel() instanceof LayerwiseKernel layerwise) {
                    addLayerwiseLaunches(layerwise, batch, segmentTables.get(b), t, update, call);
                } else if (batch.kernel() instanceof MatrixKernel matrix) {
                    addMatrixLaunches(matrix, batch, segmentTables.get(b), t, update, call);
                } else if (batch.kernel() instanceof FactoredKernel) {
                    addFactoredLaunch(batch, t, update);
                } else {
                    List<Pointer> args = new ArrayList<>(List.of(ptr(t[0]), ptr(t[1]), Pointer.to(new int[] {chunkCount}), ptr(control),
                            ptr(hyper), ptr(entrySteps), ptr(stepFlags)));
                    if (batch.quantized()) args.add(ptr(engine.codeMapsAddress())); // the _q8 entry's last argument
                    updateLaunches.add(new Launch(update, engine.gridFor(chunkCount), Pointer.to(args.toArray(new Pointer[0])), call));
                }
            }
            finalizeLaunch = finalizeLaunch(partials, totalChunks);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** fusedopt_finalize_step over {@code count} partial sums at {@code partialSums}, in order. */
    private Launch finalizeLaunch(long partialSums, int count) {
        int g = groups.count();
        return new Launch(engine.modules().function("control", "fusedopt_finalize_step"), 1,
                Pointer.to(ptr(control), ptr(partialSums), Pointer.to(new int[] {count}), ptr(hyper), ptr(groupInfo),
                        Pointer.to(new int[] {g}), ptr(segments), ptr(entrySteps), ptr(stepFlags)),
                "cuLaunchKernel(fusedopt_finalize_step, " + g + " groups, " + count + " partial sums)");
    }

    /**
     * A sharded rank's statistics, exchanged on the device (an {@link NcclStatisticsExchange}):
     * after the statistics pass, this program's partial sums are copied into a buffer padded to the
     * largest rank's count, all-gathered by NCCL, put in the global registration order
     * (fusedopt_order_partials), and the finalize kernel adds all of them. Null: unsharded again.
     *
     * @throws UnsupportedOperationException for an exchange of another kind (the host's)
     * @throws IllegalStateException when the exchange counts another number of partial sums for this rank
     */
    @Override
    public void setStatisticsExchange(StatisticsExchange exchange) {
        if (exchange == statisticsExchange) return; // the optimizer applies its inputs again and again: set up once
        if (exchange == null) {
            exchangeWork.clear();
            finalizeLaunch = finalizeLaunch(partials, ownChunks);
            statisticsExchange = null;
            return;
        }
        if (!(exchange instanceof NcclStatisticsExchange nccl)) {
            throw new UnsupportedOperationException("the CUDA step program exchanges its statistics through NCCL (an"
                    + " NcclCommunicator), not through " + exchange.getClass().getSimpleName());
        }
        int rank = nccl.nccl().rank(), padded = nccl.paddedChunks(), global = nccl.order().length;
        if (nccl.chunksPerRank()[rank] != ownChunks) {
            throw new IllegalStateException("the sharded step counts " + nccl.chunksPerRank()[rank] + " partial sums for rank " + rank
                    + ", but its own tensors have " + ownChunks + " chunks");
        }
        exchangeWork.clear(); // the checks passed: the new exchange replaces the old one
        long send = upload(Pointer.to(new double[padded]), (long) padded * Double.BYTES, "padded partial sums");
        long gathered = workspace((long) nccl.nccl().worldSize() * padded * Double.BYTES);
        long ordered = workspace((long) Math.max(1, global) * Double.BYTES);
        long order = upload(Pointer.to(nccl.order()), (long) global * Integer.BYTES, "partial sum order");
        if (ownChunks > 0) {
            exchangeWork.add(stream -> Driver.check(JCudaDriver.cuMemcpyDtoDAsync(Driver.pointerAt(send), Driver.pointerAt(partials),
                    (long) ownChunks * Double.BYTES, stream), "cuMemcpyDtoDAsync(partial sums)"));
        }
        exchangeWork.add(stream -> nccl.nccl().allGather(send, gathered, padded, Nccl.DataType.FLOAT64, Streams.handleOf(stream)));
        if (global > 0) {
            exchangeWork.add(new Launch(engine.modules().function("control", "fusedopt_order_partials"), engine.gridFor(global),
                    Pointer.to(ptr(gathered), ptr(order), Pointer.to(new int[] {global}), ptr(ordered)),
                    "cuLaunchKernel(fusedopt_order_partials, " + global + " partial sums)"));
        }
        finalizeLaunch = finalizeLaunch(ordered, global);
        statisticsExchange = exchange;
    }

    /**
     * A layer-wise batch's three launches (kernels/fusedopt_common.cuh, FO_LAYERWISE_KERNELS): the
     * norm pass into two partial sums per chunk, each tensor's sums (fusedopt_tensor_norms, from
     * its chunks' range: a tensor's chunks are consecutive), then the update, which reads them.
     */
    private void addLayerwiseLaunches(LayerwiseKernel kernel, KernelBatch batch, SegmentTable segments, long[] table,
                                      CUfunction update, String updateCall) {
        int chunkCount = segments.chunkCount();
        long chunkSums = upload(Pointer.to(new double[2 * chunkCount]), 2L * chunkCount * Double.BYTES, "chunk norm sums");
        String normsEntry = batch.mixed() ? kernel.normsMixedEntryPoint() : kernel.normsEntryPoint();
        KernelModules modules = engine.modules();
        updateLaunches.add(new Launch(modules.normsFunction(kernel, batch.mixed()), engine.gridFor(chunkCount),
                Pointer.to(ptr(table[0]), ptr(table[1]), Pointer.to(new int[] {chunkCount}), ptr(control), ptr(hyper), ptr(entrySteps),
                        ptr(stepFlags), ptr(chunkSums)), "cuLaunchKernel(" + normsEntry + ", " + chunkCount + " chunks)"));
        long tensorSums = addTensorNormsLaunch(segments, chunkSums);
        updateLaunches.add(new Launch(update, engine.gridFor(chunkCount), Pointer.to(ptr(table[0]), ptr(table[1]),
                Pointer.to(new int[] {chunkCount}), ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags), ptr(tensorSums)),
                updateCall));
    }

    /**
     * fusedopt_tensor_norms over a batch's tensors: each tensor's two sums from the two partial sums
     * per chunk in {@code chunkSums} (a tensor's chunks are consecutive). Returns the address of
     * the sums (two doubles per tensor).
     */
    private long addTensorNormsLaunch(SegmentTable segments, long chunkSums) {
        int tensors = segments.tensorCount();
        int[] tensorChunks = new int[2 * tensors]; // first chunk, chunk count
        for (int c = segments.chunkCount() - 1; c >= 0; c--) {
            tensorChunks[2 * segments.tensor(c)] = c;
            tensorChunks[2 * segments.tensor(c) + 1]++;
        }
        long tensorSums = upload(Pointer.to(new double[2 * tensors]), 2L * tensors * Double.BYTES, "tensor norm sums");
        long ranges = upload(Pointer.to(tensorChunks), (long) tensorChunks.length * Integer.BYTES, "tensor chunk ranges");
        updateLaunches.add(new Launch(engine.modules().function("control", "fusedopt_tensor_norms"), engine.gridFor(tensors),
                Pointer.to(ptr(ranges), Pointer.to(new int[] {tensors}), ptr(control), ptr(chunkSums), ptr(tensorSums)),
                "cuLaunchKernel(fusedopt_tensor_norms, " + tensors + " tensors)"));
        return tensorSums;
    }

    /** Fast mode's tensors that share their cuBLAS calls: one step count, one Newton-Schulz shape m x n (m <= n). */
    private record FastClass(int iterations, int m, int n) {}

    /**
     * A matrix batch's launches (kernels/fusedopt_matrix.cuh, FO_MATRIX_KERNELS) in the host's order
     * (io.fusedopt.cpu.HostMatrixPhase): the input pass into each tensor's X[0] with its chunks'
     * sums of squares, the tensors' sums (fusedopt_tensor_norms), the normalization, the
     * Newton-Schulz products of each step count's tensors (three per step, the tensors along
     * gridDim.z), then the update. Each tensor's workspaces (X[0] and X[1] of its length, A and B
     * of m x m floats, m = min(rows, cols)) are allocated here and freed with the program. The
     * number of product launches is fixed here from each group's step count, which a group keeps
     * (UpdatePlan.structure).
     */
    private void addMatrixLaunches(MatrixKernel kernel, KernelBatch batch, SegmentTable segments, long[] table,
                                   CUfunction update, String updateCall) {
        int chunkCount = segments.chunkCount();
        List<TensorOperands> operands = batch.tensors();
        int count = operands.size();
        long[][] workspaces = new long[count][];
        long[][] shapes = new long[count][];
        int[] iterations = new int[count];
        Map<Integer, List<Integer>> byIterations = new TreeMap<>();
        // Fast mode: the tensors of one step count and one Newton-Schulz shape (m, n), batched in cuBLAS calls.
        Map<FastClass, List<Integer>> fastClasses = new java.util.LinkedHashMap<>();
        for (int t = 0; t < count; t++) {
            TensorOperands tensor = operands.get(t);
            long[] shape = tensor.shape();
            if (shape[0] > Integer.MAX_VALUE || shape[1] > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(kernel + " on the CUDA backend takes matrices of fewer than 2^31 rows and columns,"
                        + " got shape " + java.util.Arrays.toString(shape));
            }
            long m = Math.min(shape[0], shape[1]), n = Math.max(shape[0], shape[1]);
            shapes[t] = shape;
            iterations[t] = kernel.iterations(groups.hyper(), tensor.group() * StepScalars.HYPER_STRIDE);
            if (kernel.fastProducts(groups.staticFlags(tensor.group()))) {
                fastClasses.computeIfAbsent(new FastClass(iterations[t], (int) m, (int) n), k -> new ArrayList<>()).add(t);
            } else {
                long matrixBytes = m * n * Float.BYTES, squareBytes = m * m * Float.BYTES;
                workspaces[t] = new long[] {workspace(matrixBytes), workspace(matrixBytes), workspace(squareBytes), workspace(squareBytes)};
                byIterations.computeIfAbsent(iterations[t], k -> new ArrayList<>()).add(t);
            }
        }
        for (Map.Entry<FastClass, List<Integer>> c : fastClasses.entrySet()) {
            allocateFastWorkspaces(c.getValue(), c.getKey().m(), c.getKey().n(), workspaces);
        }
        byte[] matrixBytes = DeviceSegmentTable.encodeMatrices(workspaces, shapes, iterations);
        long matrices = upload(Pointer.to(matrixBytes), matrixBytes.length, "matrix workspaces");
        long chunkSums = upload(Pointer.to(new double[2 * chunkCount]), 2L * chunkCount * Double.BYTES, "chunk norm sums");
        KernelModules modules = engine.modules();
        int grid = engine.gridFor(chunkCount);
        updateLaunches.add(new Launch(modules.inputFunction(kernel), grid, Pointer.to(ptr(table[0]), ptr(table[1]),
                Pointer.to(new int[] {chunkCount}), ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags), ptr(matrices),
                ptr(chunkSums)),
                "cuLaunchKernel(" + kernel.inputEntryPoint() + ", " + chunkCount + " chunks)"));
        long tensorSums = addTensorNormsLaunch(segments, chunkSums);
        updateLaunches.add(new Launch(modules.normalizeFunction(kernel), grid, Pointer.to(ptr(table[0]), ptr(table[1]),
                Pointer.to(new int[] {chunkCount}), ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags), ptr(matrices),
                ptr(tensorSums)),
                "cuLaunchKernel(" + kernel.normalizeEntryPoint() + ", " + chunkCount + " chunks)"));
        for (Map.Entry<Integer, List<Integer>> e : byIterations.entrySet()) {
            addProductLaunches(kernel, e.getKey(), e.getValue(), shapes, table[0], matrices);
        }
        for (Map.Entry<FastClass, List<Integer>> c : fastClasses.entrySet()) {
            addFastLaunches(kernel, c.getKey().iterations(), c.getValue(), c.getKey().m(), c.getKey().n(), workspaces, table[0], matrices);
        }
        updateLaunches.add(new Launch(update, grid, Pointer.to(ptr(table[0]), ptr(table[1]), Pointer.to(new int[] {chunkCount}),
                ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags), ptr(matrices)), updateCall));
    }

    /**
     * The Newton-Schulz products of {@code members} (indices into the batch's tensors), which all
     * take {@code iterations} steps: per step, the Gram matrix, the polynomial and the combination,
     * each over at most {@link #MAX_GRID_YZ} members at a time, its grid sized for the largest.
     */
    private void addProductLaunches(MatrixKernel kernel, int iterations, List<Integer> members, long[][] shapes, long tensors,
                                    long matrices) {
        int[] indices = members.stream().mapToInt(Integer::intValue).toArray();
        long memberTable = upload(Pointer.to(indices), (long) indices.length * Integer.BYTES, "matrix step members");
        CUfunction product = engine.modules().productFunction(kernel);
        for (int from = 0; from < indices.length; from += MAX_GRID_YZ) {
            int to = Math.min(indices.length, from + MAX_GRID_YZ);
            long m = 0, n = 0;
            for (int i = from; i < to; i++) {
                long[] shape = shapes[indices[i]];
                m = Math.max(m, Math.min(shape[0], shape[1]));
                n = Math.max(n, Math.max(shape[0], shape[1]));
            }
            int squareTiles = tiles(m), wideTiles = tiles(n);
            if (squareTiles > MAX_GRID_YZ) {
                throw new IllegalArgumentException(kernel + " on the CUDA backend takes matrices whose smaller side is at most "
                        + (long) MAX_GRID_YZ * MATRIX_TILE + ", got " + m);
            }
            long slice = memberTable + (long) from * Integer.BYTES;
            for (int step = 0; step < iterations; step++) {
                for (int which : new int[] {PRODUCT_GRAM, PRODUCT_SQUARE, PRODUCT_COMBINE}) {
                    int gridX = which == PRODUCT_COMBINE ? wideTiles : squareTiles;
                    updateLaunches.add(new Launch(product, gridX, squareTiles, to - from, MATRIX_TILE, MATRIX_TILE,
                            Pointer.to(ptr(tensors), ptr(matrices), ptr(slice), ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags),
                                    Pointer.to(new int[] {which}), Pointer.to(new int[] {step})),
                            "cuLaunchKernel(" + kernel.productEntryPoint() + ", product " + which + ", step " + step + ", "
                                    + (to - from) + " tensors)"));
                }
            }
        }
    }

    /**
     * The workspaces of one fast-mode class ({@code members}, all m x n in the Newton-Schulz layout):
     * each of X[0], X[1], A, B, bf16 X and bf16 A/B is one allocation holding the members' matrices
     * one after the other, the layout of cuBLAS's strided batches; each member's FoMatrix points at
     * its own.
     */
    private void allocateFastWorkspaces(List<Integer> members, long m, long n, long[][] workspaces) {
        long count = members.size(), matrix = m * n, square = m * m;
        long[] bases = {workspace(count * matrix * Float.BYTES), workspace(count * matrix * Float.BYTES),
                workspace(count * square * Float.BYTES), workspace(count * square * Float.BYTES),
                workspace(count * matrix * Short.BYTES), workspace(count * square * Short.BYTES)};
        long[] elements = {matrix, matrix, square, square, matrix, square};
        int[] bytes = {Float.BYTES, Float.BYTES, Float.BYTES, Float.BYTES, Short.BYTES, Short.BYTES};
        for (int i = 0; i < members.size(); i++) {
            long[] own = new long[bases.length];
            for (int j = 0; j < bases.length; j++) own[j] = bases[j] + i * elements[j] * bytes[j];
            workspaces[members.get(i)] = own;
        }
    }

    /**
     * Fast mode's Newton-Schulz steps for one class of {@code members} (indices into the batch's
     * tensors, whose workspaces {@link #allocateFastWorkspaces} laid out one after the other), all
     * m x n and taking {@code iterations} steps: per step, kernels/fusedopt_matrix.cuh's four
     * elementwise passes (NAME_fast) around three cuBLAS strided batched GEMMs with bf16 inputs,
     * over at most {@link #MAX_GRID_YZ} members at a time. The cuBLAS handle is the engine's,
     * created here, before any capture.
     */
    private void addFastLaunches(MatrixKernel kernel, int iterations, List<Integer> members, int m, int n, long[][] workspaces,
                                 long tensors, long matrices) {
        if (iterations == 0 || m == 0) return; // nothing to multiply: O is the normalized input (or empty)
        int[] indices = members.stream().mapToInt(Integer::intValue).toArray();
        long memberTable = upload(Pointer.to(indices), (long) indices.length * Integer.BYTES, "matrix step members");
        CUfunction fast = engine.modules().fastFunction(kernel);
        CublasGemm cublas = engine.cublas();
        for (int from = 0; from < indices.length; from += MAX_GRID_YZ) {
            int to = Math.min(indices.length, from + MAX_GRID_YZ), batches = to - from;
            long[] first = workspaces[indices[from]]; // the slice's first member: X[0], X[1], A, B, bf16 X, bf16 A/B
            long slice = memberTable + (long) from * Integer.BYTES;
            CublasGemm.Product gram = new CublasGemm.Product(CublasGemm.Input.BF16, batches, m, m, n, false, true);
            CublasGemm.Product square = new CublasGemm.Product(CublasGemm.Input.BF16, batches, m, m, m, false, false);
            CublasGemm.Product combine = new CublasGemm.Product(CublasGemm.Input.BF16, batches, m, n, m, false, false);
            for (int step = 0; step < iterations; step++) {
                addFastPass(fast, kernel, FAST_ROUND_X, step, (long) m * n, batches, tensors, matrices, slice);
                updateLaunches.add(new Gemm(cublas, gram, first[4], first[4], first[2]));
                addFastPass(fast, kernel, FAST_ROUND_GRAM, step, (long) m * m, batches, tensors, matrices, slice);
                updateLaunches.add(new Gemm(cublas, square, first[5], first[5], first[3]));
                addFastPass(fast, kernel, FAST_POLYNOMIAL, step, (long) m * m, batches, tensors, matrices, slice);
                updateLaunches.add(new Gemm(cublas, combine, first[5], first[4], first[(step + 1) & 1]));
                addFastPass(fast, kernel, FAST_COMBINE, step, (long) m * n, batches, tensors, matrices, slice);
            }
        }
    }

    /** One of fast mode's elementwise passes over {@code elements} per member, {@code batches} members along gridDim.z. */
    private void addFastPass(CUfunction fast, MatrixKernel kernel, int pass, int step, long elements, int batches, long tensors,
                             long matrices, long slice) {
        int blocks = (int) Math.max(1, Math.min(FAST_PASS_MAX_BLOCKS, (elements + GradientStatistics.LANES - 1) / GradientStatistics.LANES));
        updateLaunches.add(new Launch(fast, blocks, 1, batches, GradientStatistics.LANES, 1,
                Pointer.to(ptr(tensors), ptr(matrices), ptr(slice), ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags),
                        Pointer.to(new int[] {pass}), Pointer.to(new int[] {step})),
                "cuLaunchKernel(" + kernel.fastEntryPoint() + ", pass " + pass + ", step " + step + ", " + batches + " tensors)"));
    }

    /** Tiles of {@link #MATRIX_TILE} covering {@code extent} (at least one: an empty launch is refused). */
    private static int tiles(long extent) {
        return (int) Math.max(1, (extent + MATRIX_TILE - 1) / MATRIX_TILE);
    }

    /** A workspace freed with the program. */
    private long workspace(long bytes) {
        long address = engine.allocateWorkspace(bytes);
        memory.add(address);
        return address;
    }

    /**
     * A factored batch's launch (kernels/fusedopt_common.cuh, FO_FACTORED_KERNELS): one block per
     * tensor, whole, with each tensor's matrices (FoFactoredShape) and a float per matrix of scratch.
     */
    private void addFactoredLaunch(KernelBatch batch, long[] table, CUfunction update) {
        int tensors = batch.tensors().size();
        byte[] shapeBytes = DeviceSegmentTable.encodeFactoredShapes(batch.tensors());
        long shapes = upload(Pointer.to(shapeBytes), shapeBytes.length, "factored shapes");
        long matrices = 0;
        for (var tensor : batch.tensors()) matrices += DeviceSegmentTable.factoredMatrices(tensor);
        long scratchBytes = Math.max(1, matrices) * Float.BYTES;
        long scratch = upload(Pointer.to(new byte[(int) scratchBytes]), scratchBytes, "factored row means");
        String entry = batch.mixed() ? batch.kernel().mixedEntryPoint() : batch.kernel().entryPoint();
        updateLaunches.add(new Launch(update, engine.gridFor(tensors), Pointer.to(ptr(table[0]), ptr(shapes),
                Pointer.to(new int[] {tensors}), ptr(control), ptr(hyper), ptr(entrySteps), ptr(stepFlags), ptr(scratch)),
                "cuLaunchKernel(" + entry + ", " + tensors + " tensors)"));
    }

    private long upload(Pointer host, long bytes, String what) {
        long address = engine.upload(host, bytes, what);
        memory.add(address);
        return address;
    }

    private static Pointer ptr(long address) {
        return Pointer.to(Driver.pointerAt(address));
    }

    @Override
    public void run() {
        uploadChanges();
        queue(engine.stream());
    }

    /** Hyper-parameters and control inputs the host changed since the last run. */
    private void uploadChanges() {
        engine.makeCurrent();
        if (groupsDirty) {
            Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(hyper), Pointer.to(groups.hyper()),
                    (long) groups.hyper().length * Float.BYTES, engine.stream()), "cuMemcpyHtoDAsync(hyper-parameters)");
            int[] info = groups.groupInfo();
            Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(groupInfo), Pointer.to(info),
                    (long) info.length * Integer.BYTES, engine.stream()), "cuMemcpyHtoDAsync(group flags)");
            byte[] segmentBytes = groups.segmentTable();
            Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(segments), Pointer.to(segmentBytes), segmentBytes.length,
                    engine.stream()), "cuMemcpyHtoDAsync(schedule segments)");
            groupsDirty = false;
        }
        if (inputsDirty) {
            byte[] block = DeviceSegmentTable.encodeControl(inputs);
            if (inputs.dynamicScaling) {
                // The inverse scale is the device's: only the clipping threshold is the host's.
                copyControlRange(block, StepControl.OFFSET_MAX_GRAD_NORM, 4);
            } else {
                copyControlRange(block, StepControl.OFFSET_INV_GRAD_SCALE, 8); // inv_grad_scale, max_grad_norm
            }
            copyControlRange(block, StepControl.OFFSET_CHECK_GRADS, 8);          // check_grads, skip_nonfinite
            copyControlRange(block, StepControl.OFFSET_DYNAMIC_SCALING, 4);
            // growth interval, growth and backoff factors
            copyControlRange(block, StepControl.OFFSET_GROWTH_INTERVAL, StepControl.OFFSET_SCALE_GROWTHS - StepControl.OFFSET_GROWTH_INTERVAL);
            inputsDirty = false;
        }
    }

    private void copyControlRange(byte[] block, int offset, int bytes) {
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(control + offset), Pointer.to(block).withByteOffset(offset),
                bytes, engine.stream()), "cuMemcpyHtoDAsync(control block)");
    }

    /** The step's launches on {@code stream}: statistics when checked, finalize, updates (with a layer-wise kernel's norm passes before its update). */
    private void queue(CUstream stream) {
        if (inputs.checkGrads) {
            for (Launch l : statsLaunches) l.queue(stream);
            for (Queued q : exchangeWork) q.queue(stream);
        }
        finalizeLaunch.queue(stream);
        for (Queued q : updateLaunches) q.queue(stream);
    }

    @Override
    public void groupsChanged() {
        groupsDirty = true;
    }

    @Override
    public void setInputs(float invGradScale, float maxGradNorm, boolean checkGrads, boolean skipNonFinite) {
        inputs.setInputs(invGradScale, maxGradNorm, checkGrads, skipNonFinite);
        inputsDirty = true;
    }

    @Override
    public void setDynamicScaling(boolean on, double growthFactor, double backoffFactor, int growthInterval) {
        inputs.setDynamicScaling(on, growthFactor, backoffFactor, growthInterval);
        inputsDirty = true;
    }

    /**
     * Writes the scaler's state now, on the stream: the scale with its inverse, the tracker and the
     * counts. The host's copy is a staging area only; the device's block is the state.
     */
    @Override
    public void setScalerState(float scale, int growthTracker, long growths, long backoffs) {
        engine.makeCurrent();
        StepControl state = new StepControl();
        state.setScalerState(scale, growthTracker, growths, backoffs);
        byte[] block = DeviceSegmentTable.encodeControl(state);
        copyControlRange(block, StepControl.OFFSET_INV_GRAD_SCALE, 4);
        copyControlRange(block, StepControl.OFFSET_LOSS_SCALE, 8);    // loss_scale, growth_tracker
        copyControlRange(block, StepControl.OFFSET_SCALE_GROWTHS, 16); // scale_growths, scale_backoffs
    }

    /** Written now, on the stream: the seed is an input no kernel writes. */
    @Override
    public void setRoundingSeed(long seed) {
        engine.makeCurrent();
        inputs.roundingSeed = seed;
        copyControlRange(DeviceSegmentTable.encodeControl(inputs), StepControl.OFFSET_ROUNDING_SEED, 8);
    }

    @Override
    public void setCounters(long step, long skippedSteps) {
        engine.makeCurrent();
        long[] counters = {step, skippedSteps};
        Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(control), Pointer.to(counters), 16, engine.stream()),
                "cuMemcpyHtoDAsync(step counters)");
    }

    @Override
    public StepControl readControl() {
        // Wait first, then copy: JCuda pins the Java array for the whole copy call (see DeviceBuffer.read).
        engine.synchronize();
        byte[] block = new byte[StepControl.BYTES];
        Driver.check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(block), Driver.pointerAt(control), block.length, engine.stream()),
                "cuMemcpyDtoHAsync(control block)");
        return DeviceSegmentTable.decodeControl(block);
    }

    /**
     * Captures one run into a CUDA graph on a private stream (capture is not allowed on the legacy
     * default stream); replays go to the engine's stream, after uploading what changed.
     */
    @Override
    public CapturedStep capture() {
        return capture(null);
    }

    @Override
    public CapturedStep capture(java.util.function.LongConsumer alsoCaptured) {
        uploadChanges();
        engine.synchronize();
        CUgraphExec exec = captureGraph(stream -> {
            queue(stream);
            if (alsoCaptured != null) alsoCaptured.accept(Streams.handleOf(stream));
        });
        return new CapturedStep() {
            private boolean released;

            @Override
            public void replay() {
                if (released) throw new IllegalStateException("the captured step was closed");
                uploadChanges();
                Driver.check(JCudaDriver.cuGraphLaunch(exec, engine.stream()), "cuGraphLaunch");
            }

            @Override
            public void close() {
                if (released) return;
                released = true;
                engine.makeCurrent();
                JCudaDriver.cuGraphExecDestroy(exec);
            }
        };
    }

    /**
     * The graph of what {@code work} queues on a new capturing stream, instantiated, in the current
     * context. When {@code work} fails, that failure is thrown: ending the capture then usually
     * fails too (the failure invalidated the capture), and that consequence is only added to it
     * as suppressed.
     */
    static CUgraphExec captureGraph(Consumer<CUstream> work) {
        CUstream captureStream = new CUstream();
        Driver.check(JCudaDriver.cuStreamCreate(captureStream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        CUgraph graph = new CUgraph();
        try {
            Driver.check(JCudaDriver.cuStreamBeginCapture(captureStream, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                    "cuStreamBeginCapture");
            try {
                work.accept(captureStream);
            } catch (RuntimeException | Error e) {
                try {
                    Driver.check(JCudaDriver.cuStreamEndCapture(captureStream, graph), "cuStreamEndCapture");
                } catch (RuntimeException endFailure) {
                    e.addSuppressed(endFailure);
                }
                throw e;
            }
            Driver.check(JCudaDriver.cuStreamEndCapture(captureStream, graph), "cuStreamEndCapture");
            CUgraphExec exec = new CUgraphExec();
            Driver.check(JCudaDriver.cuGraphInstantiate(exec, graph, 0), "cuGraphInstantiate");
            return exec;
        } finally {
            JCudaDriver.cuGraphDestroy(graph);
            JCudaDriver.cuStreamDestroy(captureStream);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (!engine.isClosed()) {
            // Queued steps may still read the tables. Any thread may close, with any context (or none)
            // current, so the engine's context is made current first.
            int sync = engine.synchronizeQuietly();
            if (sync != 0) System.getLogger("io.fusedopt").log(System.Logger.Level.WARNING, "step program close: " + Driver.describe(sync));
        }
        memory.forEach(engine::freeTable);
        memory.clear();
    }
}
