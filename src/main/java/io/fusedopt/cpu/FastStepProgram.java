package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.UpdateKernel;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * The fast CPU form of a step, in the same order as {@link CpuStepProgram} and the device: gradient
 * statistics per chunk (in parallel, each chunk in the fixed lane order, summed in the fixed order
 * afterwards), the finalize computation, then the updates per chunk (in parallel). Chunks of the
 * segment table are the work items: 2^16 elements, large enough to stream and to balance.
 *
 * <p>A float32 tensor whose gradient needs no unscaling or clipping is updated in place (vectors
 * where its memory allows); any other is widened tile by tile into per-worker scratch, updated there
 * by the same kernels and stored back rounded, the fp32 master first, as {@link CpuStepProgram} does.
 * Everything a run touches is prepared here, so a step allocates nothing.
 */
final class FastStepProgram extends HostStepProgram {
    /** Elements per scratch tile of the widening path (16 KiB per float32 operand, in L1/L2). */
    static final int TILE = 4096;
    /** Below this many elements a step runs on the calling thread: waking the team would cost more. */
    private static final long PARALLEL_MIN_ELEMENTS = 2 * SegmentTable.CHUNK_ELEMENTS;

    /**
     * One chunk of one tensor: everything its update needs, resolved at preparation. The views
     * index the chunk from 0: each operand's chunk lies at its own place in its own block (a
     * wrapped buffer is one block, the backend's own memory has many), so one offset for all would
     * be wrong as soon as memory kinds are mixed in a tensor larger than a block.
     */
    private static final class Item {
        final UpdateKernel kernel;
        final int group;
        final long start;
        final int length;
        final BlockedHostBuffer[] operands; // param, grad, slot0..2, master (null where absent)
        final FloatBuffer[] chunkFloats;    // float32 views of the operands' elements [start, start + length), null for 16-bit
        final VectorOperand[] vectors;      // the same elements for the vectors; null unless the update runs them in place
        final boolean float32InPlace;

        Item(UpdateKernel kernel, int group, long start, int length, BlockedHostBuffer[] operands,
             VectorOperand[][] tensorVectors) {
            this.kernel = kernel;
            this.group = group;
            this.start = start;
            this.length = length;
            this.operands = operands;
            chunkFloats = new FloatBuffer[6];
            boolean allFloat32 = operands[5] == null;
            for (int j = 0; j < 6; j++) {
                BlockedHostBuffer o = operands[j];
                if (o == null) continue;
                if (o.precision() == Precision.FP32) chunkFloats[j] = o.floats(o.block(start)).slice(o.offset(start), length);
                else allFloat32 = false;
            }
            float32InPlace = allFloat32;
            if (allFloat32 && tensorVectors != null) {
                vectors = new VectorOperand[5];
                for (int j = 0; j < 5; j++) {
                    BlockedHostBuffer o = operands[j];
                    if (o != null) vectors[j] = tensorVectors[j][o.block(start)].from(o.offset(start));
                }
            } else {
                vectors = null;
            }
        }
    }

    private final WorkerTeam team;
    private final boolean parallel;
    private final GroupTable groups;
    private final Item[] items;
    private final double[] partials;
    private final double[] totalLanes = new double[GradientStatistics.LANES];
    private final double[][] lanes;        // [worker][LANES]
    private final float[][] scalars;       // [worker][SCALAR_STRIDE]
    private final FloatBuffer[][] scratchFloats;    // [worker][param, grad, slot0..2]
    private final VectorOperand[][] scratchVectors; // the same memory for the vectors, null without them
    /** Which kernels each tensor's in-place update runs, for {@link #pathSummary()}. */
    private final String pathSummary;
    private final WorkerTeam.Task statisticsTask = this::chunkStatistics;
    private final WorkerTeam.Task updateTask = this::updateChunk;

    FastStepProgram(List<KernelBatch> batches, GroupTable groups, Function<AbstractTensorBuffer, BlockedHostBuffer> host,
                    WorkerTeam team, boolean vector) {
        this.team = team;
        this.groups = groups;
        List<Item> list = new ArrayList<>();
        PathCount paths = new PathCount();
        Map<BlockedHostBuffer, VectorOperand[]> vectorMemory = new IdentityHashMap<>();
        long elements = 0;
        for (KernelBatch batch : batches) {
            List<TensorOperands> tensors = batch.tensors();
            long[] lengths = new long[tensors.size()];
            BlockedHostBuffer[][] operands = new BlockedHostBuffer[tensors.size()][];
            VectorOperand[][][] vectors = new VectorOperand[tensors.size()][][];
            for (int t = 0; t < tensors.size(); t++) {
                TensorOperands tensor = tensors.get(t);
                lengths[t] = tensor.param().length();
                elements += lengths[t];
                BlockedHostBuffer[] o = new BlockedHostBuffer[6];
                o[0] = host.apply(tensor.param());
                o[1] = host.apply(tensor.grad());
                for (int j = 0; j < tensor.slots().length; j++) o[2 + j] = tensor.slots()[j] == null ? null : host.apply(tensor.slots()[j]);
                o[5] = tensor.master() == null ? null : host.apply(tensor.master());
                operands[t] = o;
                vectors[t] = vector ? vectorOperands(o, vectorMemory) : null;
                paths.add(o, vectors[t] != null || (vector && tensor.needsMixedKernel()));
            }
            SegmentTable table = SegmentTable.of(lengths);
            for (int c = 0; c < table.chunkCount(); c++) {
                int t = table.tensor(c);
                list.add(new Item(batch.kernel(), tensors.get(t).group(), table.start(c),
                        (int) (table.end(c) - table.start(c)), operands[t], vectors[t]));
            }
        }
        items = list.toArray(new Item[0]);
        partials = new double[items.length];
        parallel = elements >= PARALLEL_MIN_ELEMENTS;
        pathSummary = paths.summary();
        int workers = team.size();
        lanes = new double[workers][GradientStatistics.LANES];
        scalars = new float[workers][StepScalars.SCALAR_STRIDE];
        scratchFloats = new FloatBuffer[workers][5];
        scratchVectors = vector ? new VectorOperand[workers][5] : null;
        for (int w = 0; w < workers; w++) {
            for (int j = 0; j < 5; j++) {
                float[] tile = new float[TILE];
                scratchFloats[w][j] = FloatBuffer.wrap(tile);
                if (vector) scratchVectors[w][j] = VectorOperand.ofArray(tile, 0);
            }
        }
    }

    /**
     * Per operand (param, grad, slot0..2), per block, the operand's memory as the vectors read it;
     * null when the tensor is not all float32 or one operand's memory is of a kind the vectors do
     * not read here (then its in-place update runs the loops). One operand per block and buffer,
     * shared by every tensor and chunk that uses it.
     */
    private static VectorOperand[][] vectorOperands(BlockedHostBuffer[] o, Map<BlockedHostBuffer, VectorOperand[]> memory) {
        if (o[5] != null) return null;
        VectorOperand[][] result = new VectorOperand[5][];
        for (int j = 0; j < 5; j++) {
            BlockedHostBuffer buffer = o[j];
            if (buffer == null) continue;
            if (buffer.precision() != Precision.FP32 || !VectorSupport.supports(buffer.memoryKind())) return null;
            result[j] = memory.computeIfAbsent(buffer, FastStepProgram::vectorBlocks);
        }
        return result;
    }

    private static VectorOperand[] vectorBlocks(BlockedHostBuffer buffer) {
        VectorOperand[] blocks = new VectorOperand[buffer.blockCount()];
        for (int b = 0; b < blocks.length; b++) {
            blocks[b] = buffer.memoryKind() == MemoryKind.ALLOCATED ? VectorOperand.ofArray(buffer.array(b), 0)
                    : VectorKernels.ofWrapped(buffer.floats(b));
        }
        return blocks;
    }

    /**
     * Which kernels the tensors' updates run, in one line: "vectors for 3 of 3 tensors (memory:
     * allocated, float[] or heap FloatBuffer)", with "loops for N (kind: why)" where some tensors
     * run the loops. A float32 tensor counts by its in-place update; a widened one (16-bit operands
     * or master weights) runs the vectors on its scratch tiles whenever the Vector API works.
     */
    String pathSummary() {
        return pathSummary;
    }

    /** Tally of tensors per kernel path and the memory kinds seen on each. */
    private static final class PathCount {
        private int tensors;
        private int vectorTensors;
        private final Set<MemoryKind> vectorKinds = EnumSet.noneOf(MemoryKind.class);
        private final Set<MemoryKind> loopKinds = EnumSet.noneOf(MemoryKind.class);

        void add(BlockedHostBuffer[] operands, boolean vectors) {
            tensors++;
            if (vectors) vectorTensors++;
            for (BlockedHostBuffer o : operands) {
                if (o == null) continue;
                MemoryKind kind = o.memoryKind();
                if (vectors) vectorKinds.add(kind);
                else if (!VectorSupport.supports(kind)) loopKinds.add(kind);
            }
        }

        String summary() {
            StringBuilder s = new StringBuilder();
            if (vectorTensors > 0) s.append("vectors for ").append(vectorTensors).append(" of ").append(tensors)
                    .append(" tensors (memory: ").append(join(vectorKinds)).append(')');
            int loops = tensors - vectorTensors;
            if (loops > 0) {
                if (s.length() > 0) s.append(", ");
                s.append("loops for ").append(loops).append(" of ").append(tensors).append(" tensors");
                if (VectorSupport.available()) {
                    s.append(" (");
                    String separator = "";
                    for (MemoryKind kind : loopKinds) {
                        s.append(separator).append(kind).append(": ").append(VectorSupport.whyLoops(kind));
                        separator = "; ";
                    }
                    s.append(')');
                }
            }
            return s.toString();
        }

        private static String join(Set<MemoryKind> kinds) {
            StringBuilder s = new StringBuilder();
            for (MemoryKind kind : kinds) s.append(s.length() > 0 ? ", " : "").append(kind);
            return s.toString();
        }
    }

    @Override
    public void run() {
        if (control.checkGrads) forEachItem(statisticsTask);
        int checked = control.checkGrads ? items.length : 0;
        control.finalizeStep(GradientStatistics.totalOf(partials, checked, totalLanes), groups);
        if (control.skip) return;
        forEachItem(updateTask);
    }

    private void forEachItem(WorkerTeam.Task task) {
        if (parallel) {
            team.run(items.length, task);
        } else {
            for (int i = 0; i < items.length; i++) task.run(0, i);
        }
    }

    /**
     * The chunk's sum of squares in {@link GradientStatistics#chunkSumOfSquares}'s order: lane
     * {@code l} adds elements {@code l, l + LANES, ...} in increasing order. Walking the chunk
     * front to back keeps each lane's order and reads memory sequentially.
     */
    private void chunkStatistics(int worker, int index) {
        Item item = items[index];
        double[] sums = lanes[worker];
        java.util.Arrays.fill(sums, 0.0);
        float invGradScale = control.invGradScale;
        boolean unscale = invGradScale != 1.0f;
        FloatBuffer floats = item.chunkFloats[1];
        BlockedHostBuffer grad = item.operands[1];
        for (int base = 0; base < item.length; base += GradientStatistics.LANES) {
            int n = Math.min(GradientStatistics.LANES, item.length - base);
            for (int l = 0; l < n; l++) {
                float g = floats != null ? floats.get(base + l) : grad.get(item.start + base + l);
                if (unscale) g = g * invGradScale;
                double x = g;
                sums[l] = sums[l] + x * x;
            }
        }
        partials[index] = GradientStatistics.treeSum(sums);
    }

    private void updateChunk(int worker, int index) {
        Item item = items[index];
        float[] s = scalars[worker];
        System.arraycopy(groups.scalars(), item.group * StepScalars.SCALAR_STRIDE, s, 0, StepScalars.SCALAR_STRIDE);
        int flags = groups.flags()[item.group];
        boolean gradPrepared = KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP);
        if (item.float32InPlace && !gradPrepared) {
            updateRange(item.kernel, item.vectors, item.chunkFloats, 0, item.length, s, flags);
            return;
        }
        VectorOperand[] vectors = scratchVectors == null ? null : scratchVectors[worker];
        FloatBuffer[] floats = scratchFloats[worker];
        BlockedHostBuffer[] o = item.operands;
        for (int done = 0; done < item.length; done += TILE) {
            int n = Math.min(TILE, item.length - done);
            long start = item.start + done;
            // Gather: the master (or the param) and the slots widened, the gradient prepared.
            gather(o[5] != null ? o[5] : o[0], item.chunkFloats[o[5] != null ? 5 : 0], start, done, floats[0], n);
            for (int k = 0; k < n; k++) floats[1].put(k, control.prepareGrad(o[1].get(start + k), flags));
            for (int j = 2; j < 5; j++) if (o[j] != null) gather(o[j], item.chunkFloats[j], start, done, floats[j], n);
            updateRange(item.kernel, vectors, floats, 0, n, s, flags);
            // Scatter: the master first, then the param rounded to its format, then the slots.
            if (o[5] != null) scatter(floats[0], item.chunkFloats[5], o[5], start, done, n);
            scatter(floats[0], item.chunkFloats[0], o[0], start, done, n);
            for (int j = 2; j < 5; j++) if (o[j] != null) scatter(floats[j], item.chunkFloats[j], o[j], start, done, n);
        }
    }

    /** The vector kernels where {@code vectors} says where the operands lie for them, else the loops. */
    private static void updateRange(UpdateKernel kernel, VectorOperand[] vectors, FloatBuffer[] floats, int from, int to, float[] s, int flags) {
        if (vectors != null) VectorKernels.run(kernel, vectors, floats, from, to, s, flags);
        else ReferenceKernels.run(kernel, floats, from, to, s, flags);
    }

    /**
     * Copies n elements from {@code start} (element {@code inChunk} of the chunk) into scratch,
     * widened; a float32 chunk view copies in bulk.
     */
    private static void gather(BlockedHostBuffer source, FloatBuffer sourceChunk, long start, int inChunk, FloatBuffer scratch, int n) {
        if (sourceChunk != null) {
            scratch.put(0, sourceChunk, inChunk, n);
        } else {
            for (int k = 0; k < n; k++) scratch.put(k, source.get(start + k));
        }
    }

    /** Stores n scratch elements at {@code start}, rounded to the target's format. */
    private static void scatter(FloatBuffer scratch, FloatBuffer targetChunk, BlockedHostBuffer target, long start, int inChunk, int n) {
        if (targetChunk != null) {
            targetChunk.put(inChunk, scratch, 0, n);
        } else {
            for (int k = 0; k < n; k++) target.set(start + k, scratch.get(k));
        }
    }

    @Override
    public void close() {
        // The scratch is arrays: the collector frees them with the program.
    }
}
