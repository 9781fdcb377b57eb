package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.FactoredStep;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.StochasticRounding;
import io.fusedopt.internal.TensorNorms;
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
 * afterwards), the finalize computation, then the updates (in parallel). The updates' items are
 * chunks of the segment table (2^16 elements, large enough to stream and to balance) and runs of
 * small float32 tensors that lie side by side, each updated as one range ({@link SmallTensorRuns});
 * the workers claim them in units of consecutive items, one chunk of a large tensor or many small
 * items. The statistics read each chunk's gradient from flat per-chunk tables.
 *
 * <p>A float32 tensor whose gradient needs no unscaling or clipping is updated in place (vectors
 * where its memory allows). Any other tensor is updated tile by tile: its float32 operands in place
 * (the fp32 master instead of a 16-bit param), its 16-bit operands widened into per-worker scratch
 * and the gradient unscaled and clipped there, by the same kernels, then the scratch rounded back
 * and the param rounded from the master, as {@link CpuStepProgram} does. An 8-bit state goes
 * through scratch too: its tile decoded ({@link QuantizationTable}), updated, and each of its
 * blocks quantized again with its new absmax ({@link VectorQuantization}, or the table's loops). The scratch is indexed like
 * the chunk (one chunk long per operand), so one index range serves in-place and scratch operands.
 * The matrix kernels' tensors (Muon) are updated last, tensor by tensor, by {@link HostMatrixPhase}
 * with the products on the team ({@link FastMatrixProducts}).
 * Everything a run touches is prepared here, so a step allocates nothing.
 */
final class FastStepProgram extends HostStepProgram {
    /** Elements per tile of the widening path: 16 KiB per float32 operand, so a tile's operands stay in L1/L2. */
    static final int TILE = 4096;
    /** Below this much work (elements, and {@link #ITEM_OVERHEAD} per chunk) a step runs on the calling thread: waking the team would cost more. */
    private static final long PARALLEL_MIN_ELEMENTS = 2 * SegmentTable.CHUNK_ELEMENTS;
    /** The kernels' operands: param (or master), grad, slot0..2. */
    private static final int KERNEL_OPERANDS = 5;
    private static final int MASTER = 5;

    /**
     * One update: a chunk of one tensor, or a run of small float32 tensors; everything it needs,
     * resolved at preparation. The views index the chunk from 0: each operand's chunk lies at its
     * own place in its own block (a wrapped buffer is one block, the backend's own memory has
     * many), so one offset for all would be wrong as soon as memory kinds are mixed in a tensor
     * larger than a block. Where a chunk is its operand's whole block the view is the buffer's
     * own, and a float32 chunk without a master needs no more arrays than its views.
     */
    private static final class Item {
        final UpdateKernel kernel;
        final int group;
        /** A chunk's first element in its tensor; 0 for a run. */
        final long start;
        /** A chunk's index among the statistics' chunks (launch by launch, chunk by chunk); -1 for a run. */
        final int chunk;
        /** A chunk's tensor's random stream for stochastic rounding ({@link TensorOperands#roundingStream}); 0 for a run. */
        final int roundingStream;
        final int length;
        final BlockedHostBuffer[] operands; // param, grad, slot0..2, master (null where absent); null for a run
        final FloatBuffer[] chunkFloats;    // float32 views of the operands' elements [start, start + length), null for 16-bit
        /**
         * Per kernel operand, the float32 chunk the kernels update in place (operand 0: the master
         * where there is one); null where it goes through scratch or is absent. Without a master,
         * {@link #chunkFloats} itself (the kernels read operands 0 to 4 only).
         */
        final FloatBuffer[] inPlaceFloats;
        /** The same for the vectors; null when this chunk runs the loops (its memory, or shorter than one vector). */
        final VectorOperand[] inPlaceVectors;
        /** Per operand (param, grad, slot0..2), its 16-bit block and the chunk's offset in it; both null when all are float32. */
        final short[][] halves;
        final int[] halfOffsets;
        /** The master's float32 block and the chunk's offset in it, for rounding the param; null without a master. */
        final float[] master;
        final int masterOffset;
        /**
         * Per kernel operand, the 8-bit state's codes, absmax and table where slot j - 2 is one
         * (dequantized into scratch per tile, quantized back); all three null without 8-bit states.
         */
        final byte[][] codes;
        final float[][] absmax;
        final QuantizationTable[] tables;
        /** Float32 everywhere and no master: with a gradient that needs no preparation, updated in place in one call. */
        final boolean float32InPlace;

        private Item(UpdateKernel kernel, int group, long start, int chunk, int roundingStream, int length,
                     BlockedHostBuffer[] operands, FloatBuffer[] chunkFloats, FloatBuffer[] inPlaceFloats,
                     VectorOperand[] inPlaceVectors, short[][] halves, int[] halfOffsets, float[] master, int masterOffset,
                     HostQuantizedBuffer[] quantized) {
            this.kernel = kernel;
            this.group = group;
            this.start = start;
            this.chunk = chunk;
            this.roundingStream = roundingStream;
            this.length = length;
            this.operands = operands;
            this.chunkFloats = chunkFloats;
            this.inPlaceFloats = inPlaceFloats;
            this.inPlaceVectors = inPlaceVectors;
            this.halves = halves;
            this.halfOffsets = halfOffsets;
            this.master = master;
            this.masterOffset = masterOffset;
            if (quantized == null) {
                codes = null;
                absmax = null;
                tables = null;
            } else {
                codes = new byte[KERNEL_OPERANDS][];
                absmax = new float[KERNEL_OPERANDS][];
                tables = new QuantizationTable[KERNEL_OPERANDS];
                for (int j = 2; j < KERNEL_OPERANDS; j++) {
                    HostQuantizedBuffer state = quantized[j - 2];
                    if (state == null) continue;
                    codes[j] = state.codes();
                    absmax[j] = state.absmax();
                    tables[j] = QuantizationTable.of(state.codeMap());
                }
            }
            this.float32InPlace = master == null && halves == null && quantized == null;
        }

        /**
         * Elements [start, start + length) of one tensor, statistics chunk {@code chunk}, whose
         * operands are {@code operands} and whose 8-bit states are {@code quantized} (per slot;
         * null without them).
         */
        static Item chunk(UpdateKernel kernel, int group, long start, int length, int chunk, int roundingStream,
                          BlockedHostBuffer[] operands, HostQuantizedBuffer[] quantized, VectorOperand[][] tensorVectors) {
            FloatBuffer[] chunkFloats = new FloatBuffer[6];
            short[][] halfBlocks = null;
            int[] offsets = null;
            for (int j = 0; j < 6; j++) {
                BlockedHostBuffer o = operands[j];
                if (o == null) continue;
                if (o.precision() == Precision.FP32) {
                    FloatBuffer block = o.floats(o.block(start));
                    int offset = o.offset(start);
                    chunkFloats[j] = offset == 0 && length == block.capacity() ? block : block.slice(offset, length);
                } else {
                    if (halfBlocks == null) {
                        halfBlocks = new short[KERNEL_OPERANDS][];
                        offsets = new int[KERNEL_OPERANDS];
                    }
                    halfBlocks[j] = o.shortArray(o.block(start));
                    offsets[j] = o.offset(start);
                }
            }
            BlockedHostBuffer masterBuffer = operands[MASTER];
            float[] master = masterBuffer == null ? null : masterBuffer.array(masterBuffer.block(start));
            int masterOffset = masterBuffer == null ? 0 : masterBuffer.offset(start);
            FloatBuffer[] inPlaceFloats;
            if (masterBuffer == null) {
                inPlaceFloats = chunkFloats;
            } else {
                inPlaceFloats = new FloatBuffer[KERNEL_OPERANDS];
                inPlaceFloats[0] = chunkFloats[MASTER];
                for (int j = 1; j < KERNEL_OPERANDS; j++) inPlaceFloats[j] = chunkFloats[j];
            }
            VectorOperand[] inPlaceVectors = null;
            if (tensorVectors != null) {
                inPlaceVectors = new VectorOperand[KERNEL_OPERANDS];
                for (int j = 0; j < KERNEL_OPERANDS; j++) {
                    int source = j == 0 && masterBuffer != null ? MASTER : j;
                    BlockedHostBuffer o = operands[source];
                    if (inPlaceFloats[j] != null) inPlaceVectors[j] = tensorVectors[source][o.block(start)].from(o.offset(start));
                }
            }
            return new Item(kernel, group, start, chunk, roundingStream, length, operands, chunkFloats, inPlaceFloats,
                    inPlaceVectors, halfBlocks, offsets, master, masterOffset, quantized);
        }

        /** A run of small float32 tensors, updated as one range of its arrays (vectors where {@code vector}). */
        static Item run(UpdateKernel kernel, int group, SmallTensorRuns.Run run, boolean vector) {
            FloatBuffer[] views = new FloatBuffer[6];
            VectorOperand[] vectors = vector ? new VectorOperand[KERNEL_OPERANDS] : null;
            for (int j = 0; j < KERNEL_OPERANDS; j++) {
                float[] array = run.arrays()[j];
                if (array == null) continue;
                views[j] = FloatBuffer.wrap(array, run.offsets()[j], run.length()).slice();
                if (vector) vectors[j] = VectorOperand.ofArray(array, run.offsets()[j]);
            }
            return new Item(kernel, group, 0, -1, 0, run.length(), null, views, views, vectors, null, null, null, 0, null);
        }

        /** Whether operand j (0 to 4) is 16-bit and so widened into scratch (a param with a master is not: the master is). */
        boolean widened(int j) {
            return halves != null && halves[j] != null && (j != 0 || master == null);
        }

        /** Whether operand j (0 to 4) is an 8-bit state, and so dequantized into scratch. */
        boolean quantized(int j) {
            return tables != null && tables[j] != null;
        }
    }

    private final WorkerTeam team;
    private final boolean parallel;
    private final GroupTable groups;
    /** The updates: chunks of tensors in no run, and runs, launch by launch in the tensors' order. */
    private final Item[] items;
    /** Per chunk (launch by launch, chunk by chunk), for the statistics: the gradient's float32 block view or 16-bit block (the other null). */
    private final FloatBuffer[] gradFloats;
    private final short[][] gradHalves;
    private final Precision[] gradPrecision;
    /** Per chunk, its first element's place in its gradient block, and its length. */
    private final int[] gradOffset;
    private final int[] chunkLength;
    /**
     * The parallel loops' work units: unit u runs items (or chunks, for the statistics) [starts[u],
     * starts[u + 1]), consecutive ones of at least {@link #UNIT_WORK} work (or one), so that small
     * tensors are claimed many at a time and not one by one from the counter the workers share.
     */
    private final int[] unitStarts;
    private final int[] statisticsUnitStarts;
    private final double[] partials;
    /** Where each chunk's partial sum goes: the total adds them in registration order. */
    private final int[] partialPositions;
    private final double[] totalLanes = new double[GradientStatistics.LANES];
    private final double[][] lanes;        // [worker][LANES]
    private final StochasticRounding[] rounding; // [worker]
    /** The per-tensor norms of the layer-wise kernels' chunks; null when no kernel is layer-wise. */
    private final TensorNorms norms;
    /** The matrix kernels' tensors, updated after the others, their products on the team; null when there is none. */
    private final HostMatrixPhase matrices;
    private final TensorNorms.Scratch[] normScratch; // [worker], created at the first norm pass
    /** The factored kernels' tensors, updated whole (one after the other, after the chunk-wise updates); null when there is none. */
    private final FactoredStep factored;
    private final float[][] scalars;       // [worker][SCALAR_STRIDE]
    private final boolean vector;
    /** [worker][kernel operand]: one chunk of scratch where some chunk widens that operand (always for the grad), else null. */
    private final float[][][] scratch;
    private final FloatBuffer[][] scratchFloats;    // the same memory as FloatBuffers
    private final VectorOperand[][] scratchVectors; // the same memory for the vectors, null without them
    /** [worker]: quantizes the tiles of 8-bit states with vectors; null entries where the table's loops do (or no tensor has them). */
    private final VectorQuantization[] vectorQuantizers;
    /** [worker][kernel operand]: the operands of the tile being updated, in place or scratch (filled per chunk). */
    private final FloatBuffer[][] workFloats;
    private final VectorOperand[][] workVectors;
    /** Which kernels each tensor's in-place update runs, for {@link #pathSummary()}. */
    private final String pathSummary;
    private final WorkerTeam.Task statisticsTask = this::unitStatistics;
    private final WorkerTeam.Task normsTask = this::unitNorms;
    private final WorkerTeam.Task updateTask = this::updateUnit;

    /** What an item costs beside its elements, in elements: the whole cost of a tiny tensor's update, nearly. */
    private static final int ITEM_OVERHEAD = 64;
    /** The least work, in elements, of a unit of the parallel loops (a chunk is one unit: 2^16). */
    private static final long UNIT_WORK = SegmentTable.CHUNK_ELEMENTS / 4;

    FastStepProgram(List<KernelBatch> batches, GroupTable groups, Function<AbstractTensorBuffer, BlockedHostBuffer> host,
                    WorkerTeam team, boolean vector) {
        this.team = team;
        this.groups = groups;
        this.vector = vector;
        int vectorLanes = vector ? VectorKernels.SPECIES.length() : Integer.MAX_VALUE;
        List<Item> list = new ArrayList<>();
        List<FloatBuffer> chunkGradFloats = new ArrayList<>();
        List<short[]> chunkGradHalves = new ArrayList<>();
        List<Precision> chunkGradPrecision = new ArrayList<>();
        IntList chunkGradOffset = new IntList(), chunkLengths = new IntList();
        PathCount paths = new PathCount();
        int quantizedTensors = 0, wholeTensorCount = 0, matrixTensorCount = 0;
        Map<BlockedHostBuffer, VectorOperand[]> vectorMemory = new IdentityHashMap<>();
        for (KernelBatch batch : batches) {
            List<TensorOperands> tensors = batch.tensors();
            long[] lengths = new long[tensors.size()];
            int[] tensorGroups = new int[tensors.size()];
            BlockedHostBuffer[][] operands = new BlockedHostBuffer[tensors.size()][];
            HostQuantizedBuffer[][] quantized = new HostQuantizedBuffer[tensors.size()][];
            boolean[] vectorsReadThem = new boolean[tensors.size()];
            boolean wholeTensors = FactoredStep.updates(batch); // its chunks are the statistics' only
            for (int t = 0; t < tensors.size(); t++) {
                TensorOperands tensor = tensors.get(t);
                lengths[t] = tensor.param().length();
                tensorGroups[t] = tensor.group();
                BlockedHostBuffer[] o = new BlockedHostBuffer[6];
                o[0] = host.apply(tensor.param());
                o[1] = host.apply(tensor.grad());
                for (int j = 0; j < tensor.slots().length; j++) {
                    AbstractTensorBuffer slot = tensor.slots()[j];
                    if (slot instanceof HostQuantizedBuffer q) { // its codes and absmax, through scratch per tile
                        if (quantized[t] == null) quantized[t] = new HostQuantizedBuffer[UpdateKernel.MAX_STATE_SLOTS];
                        quantized[t][j] = q;
                    } else if (slot != null) {
                        o[2 + j] = host.apply(slot);
                    }
                }
                o[5] = tensor.master() == null ? null : host.apply(tensor.master());
                operands[t] = o;
                vectorsReadThem[t] = vector && vectorsRead(o);
                if (wholeTensors) wholeTensorCount++;
                else if (batch.kernel() instanceof MatrixKernel) matrixTensorCount++; // the matrix phase reads through arrays
                else paths.add(o, vectorsReadThem[t]);
                if (quantized[t] != null) quantizedTensors++;
            }
            boolean[] inRun = new boolean[tensors.size()];
            // A layer-wise kernel's tensors each take their own trust ratio: they never form runs.
            boolean matrix = batch.kernel() instanceof MatrixKernel; // updated by the matrix phase; its gradients are in the statistics
            List<SmallTensorRuns.Run> runs = matrix || wholeTensors || batch.mixed() || batch.quantized() || batch.kernel() instanceof LayerwiseKernel
                    ? List.of() : SmallTensorRuns.form(operands, lengths, tensorGroups, inRun);
            int nextRun = 0;
            SegmentTable table = SegmentTable.of(lengths);
            for (int c = 0; c < table.chunkCount(); c++) {
                int t = table.tensor(c);
                long start = table.start(c);
                int length = (int) (table.end(c) - start);
                BlockedHostBuffer grad = operands[t][1];
                boolean floatGrad = grad.precision() == Precision.FP32;
                chunkGradFloats.add(floatGrad ? grad.floats(grad.block(start)) : null);
                chunkGradHalves.add(floatGrad ? null : grad.shortArray(grad.block(start)));
                chunkGradPrecision.add(grad.precision());
                chunkGradOffset.add(grad.offset(start));
                chunkLengths.add(length);
                if (matrix || wholeTensors) continue;
                if (nextRun < runs.size() && runs.get(nextRun).first() == t) { // a run's update where its first tensor is
                    list.add(Item.run(batch.kernel(), tensorGroups[t], runs.get(nextRun++), vector));
                }
                if (inRun[t]) continue;
                // A tensor shorter than one vector runs the loops' tail only: it needs no vector operands.
                VectorOperand[][] vectors = vectorsReadThem[t] && lengths[t] >= vectorLanes ? vectorOperands(operands[t], vectorMemory) : null;
                list.add(Item.chunk(batch.kernel(), tensorGroups[t], start, length, chunkLengths.size() - 1,
                        tensors.get(t).roundingStream(), operands[t], quantized[t], vectors));
            }
        }
        items = list.toArray(new Item[0]);
        gradFloats = chunkGradFloats.toArray(new FloatBuffer[0]);
        gradHalves = chunkGradHalves.toArray(new short[0][]);
        gradPrecision = chunkGradPrecision.toArray(new Precision[0]);
        gradOffset = chunkGradOffset.toArray();
        chunkLength = chunkLengths.toArray();
        partials = new double[chunkLength.length];
        partialPositions = GradientStatistics.registrationPositions(batches);
        int[] itemLengths = new int[items.length];
        for (int i = 0; i < items.length; i++) itemLengths[i] = items[i].length;
        unitStarts = workUnits(itemLengths);
        statisticsUnitStarts = workUnits(chunkLength);
        long work = 0;
        for (int length : itemLengths) work += length + ITEM_OVERHEAD;
        parallel = work >= PARALLEL_MIN_ELEMENTS;
        int workers = team.size();
        lanes = new double[workers][GradientStatistics.LANES];
        rounding = new StochasticRounding[workers];
        for (int w = 0; w < workers; w++) rounding[w] = new StochasticRounding();
        norms = TensorNorms.of(batches);
        matrices = HostMatrixPhase.of(batches, new FastMatrixProducts(team, vector), vector);
        factored = FactoredStep.of(batches);
        normScratch = new TensorNorms.Scratch[workers];
        scalars = new float[workers][StepScalars.SCALAR_STRIDE];
        boolean[] widens = new boolean[KERNEL_OPERANDS];
        widens[1] = true; // a float32 gradient is unscaled and clipped in scratch
        for (Item item : items) for (int j = 0; j < KERNEL_OPERANDS; j++) widens[j] |= item.widened(j) || item.quantized(j);
        vectorQuantizers = new VectorQuantization[workers];
        boolean quantizeWithVectors = quantizedTensors > 0 && vector && VectorSupport.quantizes();
        for (int w = 0; quantizeWithVectors && w < workers; w++) vectorQuantizers[w] = new VectorQuantization();
        String summary = paths.summary() + (quantizedTensors == 0 ? "" : "; 8-bit states of " + quantizedTensors + " tensors quantized by "
                + (quantizeWithVectors ? "vectors" : "table loops" + (vector ? " (" + VectorSupport.whyQuantizationLoops() + ")" : "")));
        if (wholeTensorCount > 0) {
            summary = summary + (summary.isEmpty() ? "" : "; ") + wholeTensorCount + " tensors updated whole by loops (factored kernels)";
        }
        if (matrixTensorCount > 0) {
            summary = summary + (summary.isEmpty() ? "" : "; ") + matrixTensorCount + " matrices orthogonalized by "
                    + (vector ? "SIMD" : "loop") + " products on the team (matrix kernels)";
        }
        pathSummary = summary;
        scratch = new float[workers][KERNEL_OPERANDS][];
        scratchFloats = new FloatBuffer[workers][KERNEL_OPERANDS];
        scratchVectors = vector ? new VectorOperand[workers][KERNEL_OPERANDS] : null;
        workFloats = new FloatBuffer[workers][KERNEL_OPERANDS];
        workVectors = new VectorOperand[workers][KERNEL_OPERANDS];
        for (int w = 0; w < workers; w++) {
            for (int j = 0; j < KERNEL_OPERANDS; j++) {
                if (!widens[j]) continue;
                scratch[w][j] = new float[(int) SegmentTable.CHUNK_ELEMENTS];
                scratchFloats[w][j] = FloatBuffer.wrap(scratch[w][j]);
                if (vector) scratchVectors[w][j] = VectorOperand.ofArray(scratch[w][j], 0);
            }
        }
    }

    /**
     * Whether the vectors read the memory of every float32 operand the kernels update in place
     * (16-bit operands are widened into scratch, which they always read; a param with a master is
     * not read by the kernels).
     */
    private static boolean vectorsRead(BlockedHostBuffer[] o) {
        for (int j = 0; j < 6; j++) {
            BlockedHostBuffer buffer = o[j];
            if (buffer == null || buffer.precision() != Precision.FP32 || (j == 0 && o[MASTER] != null)) continue;
            if (!VectorSupport.supports(buffer.memoryKind())) return false;
        }
        return true;
    }

    /**
     * Per operand (param, grad, slot0..2, master), per block, the memory of each float32 operand as
     * the vectors read it (16-bit operands are widened into scratch, which the vectors always read),
     * for a tensor whose memory {@link #vectorsRead}. A param with a master is not read by the
     * kernels and needs none. One operand per block and buffer, shared by every tensor and chunk
     * that uses it.
     */
    private static VectorOperand[][] vectorOperands(BlockedHostBuffer[] o, Map<BlockedHostBuffer, VectorOperand[]> memory) {
        VectorOperand[][] result = new VectorOperand[6][];
        for (int j = 0; j < 6; j++) {
            BlockedHostBuffer buffer = o[j];
            if (buffer == null || buffer.precision() != Precision.FP32 || (j == 0 && o[MASTER] != null)) continue;
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
     * run the loops. A tensor runs the vectors when the memory of each of its float32 operands
     * allows (16-bit operands are widened into scratch, which always does). A factored kernel's
     * tensors (updated whole, {@link FactoredStep}) are counted apart.
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
        if (control.checkGrads) forEachUnit(statisticsUnitStarts, statisticsTask);
        int checked = control.checkGrads ? partials.length : 0;
        control.finalizeStep(total(partials, checked, totalLanes), groups);
        if (control.skip) return;
        if (norms != null) {
            forEachUnit(unitStarts, normsTask);
            norms.reduce();
        }
        forEachUnit(unitStarts, updateTask);
        if (matrices != null) matrices.run(groups, control);
        if (factored != null) factored.run(groups, control);
    }

    private void forEachUnit(int[] starts, WorkerTeam.Task task) {
        if (parallel) {
            team.run(starts.length - 1, task);
        } else {
            for (int u = 0; u < starts.length - 1; u++) task.run(0, u);
        }
    }

    /**
     * The work units over items (or chunks) of these lengths: consecutive ones of at least
     * {@link #UNIT_WORK} work, counting {@link #ITEM_OVERHEAD} for each; starts[u] is unit u's first.
     */
    private static int[] workUnits(int[] lengths) {
        int[] starts = new int[lengths.length + 1];
        int units = 0;
        long unitWork = 0;
        for (int i = 0; i < lengths.length; i++) {
            if (unitWork == 0) starts[units++] = i;
            unitWork += lengths[i] + ITEM_OVERHEAD;
            if (unitWork >= UNIT_WORK) unitWork = 0;
        }
        starts[units] = lengths.length;
        return java.util.Arrays.copyOf(starts, units + 1);
    }

    private void unitStatistics(int worker, int unit) {
        for (int c = statisticsUnitStarts[unit]; c < statisticsUnitStarts[unit + 1]; c++) chunkStatistics(worker, c);
    }

    /**
     * The chunk's sum of squares in {@link GradientStatistics#chunkSumOfSquares}'s order: lane
     * {@code l} adds elements {@code l, l + LANES, ...} in increasing order. Walking the chunk
     * front to back keeps each lane's order and reads memory sequentially.
     */
    private void chunkStatistics(int worker, int chunk) {
        double[] sums = lanes[worker];
        int length = chunkLength[chunk];
        int used = GradientStatistics.lanesUsed(length);
        java.util.Arrays.fill(sums, 0, used, 0.0);
        float invGradScale = control.invGradScale;
        boolean unscale = invGradScale != 1.0f;
        FloatBuffer floats = gradFloats[chunk];
        short[] half = gradHalves[chunk];
        Precision halfPrecision = gradPrecision[chunk];
        int offset = gradOffset[chunk];
        for (int base = 0; base < length; base += GradientStatistics.LANES) {
            int n = Math.min(GradientStatistics.LANES, length - base);
            for (int l = 0; l < n; l++) {
                int k = offset + base + l;
                float g = half == null ? floats.get(k) : Conversions.widen(halfPrecision, half[k]);
                if (unscale) g = g * invGradScale;
                double x = g;
                sums[l] = sums[l] + x * x;
            }
        }
        partials[partialPositions[chunk]] = GradientStatistics.treeSum(sums, used);
    }

    /**
     * The layer-wise kernels' norm pass over the unit's chunks (TensorNorms reads the operands
     * element by element, widened, as the reference does: the same bits on both CPU backends).
     */
    private void unitNorms(int worker, int unit) {
        TensorNorms.Scratch scratch = normScratch[worker];
        if (scratch == null) normScratch[worker] = scratch = new TensorNorms.Scratch();
        float[] s = scalars[worker];
        for (int i = unitStarts[unit]; i < unitStarts[unit + 1]; i++) {
            Item item = items[i];
            if (item.chunk < 0 || !norms.covers(item.chunk)) continue;
            System.arraycopy(groups.scalars(), item.group * StepScalars.SCALAR_STRIDE, s, 0, StepScalars.SCALAR_STRIDE);
            norms.chunk(item.chunk, item.operands, 0, item.start, item.start + item.length, s, groups.flags()[item.group],
                    control, scratch);
        }
    }

    /** The unit's items in order; a group's scalars are copied once for a run of its items (they do not change during the updates). */
    private void updateUnit(int worker, int unit) {
        float[] s = scalars[worker];
        int group = -1;
        int flags = 0;
        boolean gradPrepared = false;
        for (int i = unitStarts[unit]; i < unitStarts[unit + 1]; i++) {
            Item item = items[i];
            if (item.group != group) {
                group = item.group;
                System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, s, 0, StepScalars.SCALAR_STRIDE);
                flags = groups.flags()[group];
                gradPrepared = KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP);
            }
            if (norms != null && item.chunk >= 0 && norms.covers(item.chunk)) norms.tensorScalars(item.chunk, s, flags);
            if (item.float32InPlace && !gradPrepared) {
                updateRange(item.kernel, item.inPlaceVectors, item.inPlaceFloats, 0, item.length, s, flags);
            } else {
                updateTiles(worker, item, s, flags);
            }
        }
    }

    /**
     * A chunk with a 16-bit operand, a master, 8-bit states or a gradient to unscale or clip: tile
     * by tile, through scratch. An 8-bit state's tile is dequantized into scratch and its blocks
     * quantized again after the update, each with its new absmax ({@link #TILE} and the chunks
     * are whole blocks, so a tile starts on a block boundary and ends on one or at the tensor's end).
     */
    private void updateTiles(int worker, Item item, float[] s, int flags) {
        boolean unscale = KernelFlags.has(flags, KernelFlags.UNSCALE), clip = KernelFlags.has(flags, KernelFlags.CLIP);
        boolean gradPrepared = unscale || clip;
        // A widened param (16-bit, no master) is rounded stochastically where the optimizer asks for it.
        boolean stochastic = KernelFlags.has(flags, KernelFlags.STOCHASTIC_ROUNDING);
        // The kernels' operands for this chunk: in place where float32, else (and a prepared grad) scratch.
        FloatBuffer[] floats = workFloats[worker];
        VectorOperand[] vectors = item.inPlaceVectors == null ? null : workVectors[worker];
        float[][] tiles = scratch[worker];
        for (int j = 0; j < KERNEL_OPERANDS; j++) {
            boolean viaScratch = item.widened(j) || item.quantized(j) || (j == 1 && gradPrepared);
            // A reference store costs a write barrier: only where the operand changes from the last chunk.
            FloatBuffer operand = viaScratch ? scratchFloats[worker][j] : item.inPlaceFloats[j];
            if (floats[j] != operand) floats[j] = operand;
            if (vectors != null) {
                VectorOperand vectorOperand = viaScratch ? scratchVectors[worker][j] : item.inPlaceVectors[j];
                if (vectors[j] != vectorOperand) vectors[j] = vectorOperand;
            }
        }
        BlockedHostBuffer[] o = item.operands;
        for (int done = 0; done < item.length; done += TILE) {
            int n = Math.min(TILE, item.length - done);
            for (int j = 0; j < KERNEL_OPERANDS; j++) {
                if (item.widened(j)) widen(o[j].precision(), item.halves[j], item.halfOffsets[j] + done, tiles[j], done, n);
                if (item.quantized(j)) dequantize(item, j, done, n, tiles[j]);
            }
            if (gradPrepared) {
                if (!item.widened(1)) item.chunkFloats[1].get(done, tiles[1], done, n);
                prepareGrad(tiles[1], done, n, unscale, clip, flags);
            }
            updateRange(item.kernel, vectors, floats, done, done + n, s, flags);
            // Store back: the param rounded from the master, then the widened param and slots rounded.
            if (item.master != null) {
                if (item.halves != null && item.halves[0] != null) {
                    narrow(o[0].precision(), item.master, item.masterOffset + done, item.halves[0], item.halfOffsets[0] + done, n);
                } else {
                    item.chunkFloats[0].put(done, item.master, item.masterOffset + done, n);
                }
            }
            for (int j = 0; j < KERNEL_OPERANDS; j++) {
                if (j == 1 || !item.widened(j)) continue;
                if (j == 0 && stochastic) {
                    rounding[worker].narrow(o[0].precision(), tiles[0], done, item.halves[0], item.halfOffsets[0] + done, n,
                            control.roundingSeed, control.step, item.roundingStream, item.start + done);
                } else {
                    narrow(o[j].precision(), tiles[j], done, item.halves[j], item.halfOffsets[j] + done, n);
                }
            }
            for (int j = 2; j < KERNEL_OPERANDS; j++) {
                if (item.quantized(j)) quantize(worker, item, j, done, n, tiles[j]);
            }
        }
    }

    /** The vector kernels where {@code vectors} says where the operands lie for them, else the loops. */
    private static void updateRange(UpdateKernel kernel, VectorOperand[] vectors, FloatBuffer[] floats, int from, int to, float[] s, int flags) {
        if (vectors != null) VectorKernels.run(kernel, vectors, floats, from, to, s, flags);
        else ReferenceKernels.run(kernel, floats, from, to, s, flags);
    }

    /**
     * Elements [done, done + n) of the chunk's 8-bit state in operand j decoded into
     * {@code tile[done ...]}: the table's loop (faster than a gather, see {@link VectorQuantization}).
     */
    private static void dequantize(Item item, int j, int done, int n, float[] tile) {
        int from = (int) item.start + done; // a quantized state has at most 2^31 - 9 elements
        item.tables[j].dequantizeBlocks(item.codes[j], from, n, item.absmax[j], from / BlockwiseQuantization.BLOCK, tile, done);
    }

    /** {@code tile[done, done + n)} quantized into the same elements of the chunk's 8-bit state in operand j, block by block. */
    private void quantize(int worker, Item item, int j, int done, int n, float[] tile) {
        int from = (int) item.start + done;
        int block = from / BlockwiseQuantization.BLOCK;
        VectorQuantization vectors = vectorQuantizers[worker];
        if (vectors != null) vectors.quantizeBlocks(item.tables[j], tile, done, n, item.codes[j], from, item.absmax[j], block);
        else item.tables[j].quantizeBlocks(tile, done, n, item.codes[j], from, item.absmax[j], block);
    }

    /** n 16-bit values widened to float32 (exact): vectors for bf16 where they run, else {@link Conversions}. */
    private void widen(Precision precision, short[] from, int fromOffset, float[] to, int toOffset, int n) {
        if (vector && precision == Precision.BF16) {
            VectorConversions.widenBf16(from, fromOffset, to, toOffset, n);
        } else {
            for (int k = 0; k < n; k++) to[toOffset + k] = Conversions.widen(precision, from[fromOffset + k]);
        }
    }

    /** n float32 values rounded to 16 bits as {@link Conversions#narrow} does: vectors for bf16 where they run. */
    private void narrow(Precision precision, float[] from, int fromOffset, short[] to, int toOffset, int n) {
        if (vector && precision == Precision.BF16) {
            VectorConversions.narrowBf16(from, fromOffset, to, toOffset, n);
        } else {
            for (int k = 0; k < n; k++) to[toOffset + k] = Conversions.narrow(precision, from[fromOffset + k]);
        }
    }

    /** The gradient in scratch unscaled, then clipped, as {@link io.fusedopt.internal.StepControl#prepareGrad} does. */
    private void prepareGrad(float[] g, int from, int n, boolean unscale, boolean clip, int flags) {
        if (vector) {
            VectorConversions.scale(g, from, n, unscale, control.stepInvGradScale, clip, control.clipCoef);
        } else {
            for (int k = from; k < from + n; k++) g[k] = control.prepareGrad(g[k], flags);
        }
    }

    @Override
    public void close() {
        // The scratch is arrays: the collector frees them with the program.
    }
}
