package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.FactoredStep;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.NewtonSchulz;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.StochasticRounding;
import io.fusedopt.internal.TensorNorms;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.UpdateKernel;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The CPU form of a step, in the device's order: gradient statistics chunk by chunk, the finalize
 * computation, then the updates. Float32 tensors are updated in place, their gradient first
 * unscaled and clipped into scratch where the step needs it; any other tensor is widened into
 * scratch arrays, updated there by the same {@link ReferenceKernels}, and stored back (rounded to
 * its formats, the fp32 master written first), which is what the mixed kernels do element by element.
 *
 * <p>What an update needs is resolved at preparation into flat arrays indexed by update: a step over
 * many small tensors then reads its bookkeeping front to back instead of following several objects
 * per tensor. An update is a chunk of a tensor, or a run of small float32 tensors that lie side by
 * side ({@link SmallTensorRuns}) updated as one range: at 10^5 four-element tensors a call per
 * tensor cost several times the arithmetic. The statistics keep their chunks, whose order fixes
 * the bits of the gradient's norm. A layer-wise kernel's tensors never form runs: each takes its own
 * trust ratio, from its norm pass ({@link TensorNorms}) over the same chunks as the statistics.
 *
 * <p>The matrix kernels' tensors (Muon) are updated last, tensor by tensor, by {@link HostMatrixPhase}
 * with the reference's product loops.
 */
final class CpuStepProgram extends HostStepProgram {
    private static final int CHUNK = (int) SegmentTable.CHUNK_ELEMENTS;
    /** Operands per update in {@link #operands}: param, grad, slot0..2, master. */
    private static final int OPERANDS = 6;
    private static final int MASTER = 5;
    /** Kernel operands per update in {@link #float32Operands}: param, grad, slot0..2. */
    private static final int KERNEL_OPERANDS = SmallTensorRuns.OPERANDS;
    private static final int SLOTS = UpdateKernel.MAX_STATE_SLOTS;
    private static final int BLOCK = BlockwiseQuantization.BLOCK;

    private final GroupTable groups;
    /** Per chunk (launch by launch, chunk by chunk), for the statistics: the gradient and the chunk's elements [from, to). */
    private final HostBuffer[] chunkGrad;
    private final int[] chunkFrom;
    private final int[] chunkTo;
    private final UpdateKernel[] updateKernel;
    /** The group table entry of each update's tensors. */
    private final int[] updateGroup;
    /** Each update's elements [updateFrom, updateTo) of its tensor (a CPU tensor is one array: int indices); [0, length) for a run. */
    private final int[] updateFrom;
    private final int[] updateTo;
    /** [update * OPERANDS + j]: param, grad, slot0..2, master (null where absent, and for every operand of a run). */
    private final HostBuffer[] operands;
    /**
     * [update * KERNEL_OPERANDS + j]: where every operand is float32, views {param, grad, slot0..2}
     * of the update's elements, indexed from 0 (so that scratch, also indexed from 0, can stand in
     * for the gradient); else null.
     */
    private final FloatBuffer[] float32Operands;
    private final boolean[] allFloat32;
    /** [update * SLOTS + j]: the 8-bit blockwise state in slot j, or null (every slot of an unquantized update). */
    private final HostQuantizedBuffer[] quantizedSlots;
    /** Each update's chunk (its index among the statistics' chunks), or -1 for a run of tensors. */
    private final int[] updateChunk;
    /** Each update's tensor's random stream for stochastic rounding ({@link TensorOperands#roundingStream}); 0 for a run. */
    private final int[] updateStream;
    private final StochasticRounding rounding = new StochasticRounding();
    /** The per-tensor norms of the layer-wise kernels' chunks; null when no kernel is layer-wise. */
    private final TensorNorms norms;
    private TensorNorms.Scratch normScratch;
    /** The matrix kernels' tensors, updated after the others; null when there is none. */
    private final HostMatrixPhase matrices;
    /** The factored kernels' tensors, updated whole after the chunk-wise updates; null when there is none. */
    private final FactoredStep factored;
    private final double[] partials;
    /** Where each chunk's partial sum goes: the total adds them in registration order. */
    private final int[] partialPositions;
    private final double[] lanes = new double[GradientStatistics.LANES];
    private final float[] scalars = new float[StepScalars.SCALAR_STRIDE];
    private float[][] scratch; // param, grad, slot0..2, allocated at the first update through scratch
    private FloatBuffer[] scratchBuffers;
    private final FloatBuffer[] gathered = new FloatBuffer[KERNEL_OPERANDS];

    CpuStepProgram(List<KernelBatch> batches, GroupTable groups, Function<AbstractTensorBuffer, HostBuffer> host,
                   NewtonSchulz.Products matrixProducts) {
        this.groups = groups;
        List<HostBuffer> grads = new ArrayList<>();
        IntList from = new IntList(), to = new IntList();
        List<UpdateKernel> kernels = new ArrayList<>();
        IntList updateGroups = new IntList(), updateFroms = new IntList(), updateTos = new IntList();
        IntList updateChunks = new IntList(), updateStreams = new IntList();
        List<HostBuffer> updateOperands = new ArrayList<>();
        List<HostQuantizedBuffer> updateQuantized = new ArrayList<>();
        List<FloatBuffer> views = new ArrayList<>();
        for (KernelBatch batch : batches) {
            List<TensorOperands> tensors = batch.tensors();
            long[] lengths = new long[tensors.size()];
            int[] tensorGroups = new int[tensors.size()];
            HostBuffer[][] tensorOperands = new HostBuffer[tensors.size()][];
            HostQuantizedBuffer[][] tensorQuantized = new HostQuantizedBuffer[tensors.size()][SLOTS];
            for (int t = 0; t < tensors.size(); t++) {
                TensorOperands tensor = tensors.get(t);
                lengths[t] = tensor.param().length();
                tensorGroups[t] = tensor.group();
                HostBuffer[] o = new HostBuffer[OPERANDS];
                o[0] = host.apply(tensor.param());
                o[1] = host.apply(tensor.grad());
                for (int j = 0; j < tensor.slots().length; j++) {
                    AbstractTensorBuffer slot = tensor.slots()[j];
                    if (slot instanceof HostQuantizedBuffer q) tensorQuantized[t][j] = q; // its codes and absmax, read and written per block
                    else o[2 + j] = slot == null ? null : host.apply(slot);
                }
                o[MASTER] = tensor.master() == null ? null : host.apply(tensor.master());
                tensorOperands[t] = o;
            }
            boolean[] inRun = new boolean[tensors.size()];
            boolean matrix = batch.kernel() instanceof MatrixKernel; // updated by the matrix phase; its gradients are in the statistics
            boolean wholeTensors = FactoredStep.updates(batch); // its chunks are the statistics' only
            List<SmallTensorRuns.Run> runs = matrix || wholeTensors || batch.mixed() || batch.quantized() || batch.kernel() instanceof LayerwiseKernel
                    ? List.of() : SmallTensorRuns.form(tensorOperands, lengths, tensorGroups, inRun);
            int nextRun = 0;
            SegmentTable table = SegmentTable.of(lengths);
            for (int c = 0; c < table.chunkCount(); c++) {
                int t = table.tensor(c);
                HostBuffer[] o = tensorOperands[t];
                int chunkStart = (int) table.start(c), chunkEnd = (int) table.end(c);
                grads.add(o[1]);
                from.add(chunkStart);
                to.add(chunkEnd);
                if (matrix || wholeTensors) continue;
                if (nextRun < runs.size() && runs.get(nextRun).first() == t) { // a run's update where its first tensor is
                    SmallTensorRuns.Run run = runs.get(nextRun++);
                    kernels.add(batch.kernel());
                    updateGroups.add(tensorGroups[t]);
                    updateFroms.add(0);
                    updateTos.add(run.length());
                    updateChunks.add(-1);
                    updateStreams.add(0);
                    for (int j = 0; j < OPERANDS; j++) updateOperands.add(null);
                    for (int j = 0; j < SLOTS; j++) updateQuantized.add(null);
                    for (int j = 0; j < KERNEL_OPERANDS; j++) {
                        views.add(run.arrays()[j] == null ? null : FloatBuffer.wrap(run.arrays()[j], run.offsets()[j], run.length()).slice());
                    }
                }
                if (inRun[t]) continue;
                kernels.add(batch.kernel());
                updateGroups.add(tensorGroups[t]);
                updateFroms.add(chunkStart);
                updateTos.add(chunkEnd);
                updateChunks.add(grads.size() - 1);
                updateStreams.add(tensors.get(t).roundingStream());
                for (HostBuffer operand : o) updateOperands.add(operand);
                for (HostQuantizedBuffer q : tensorQuantized[t]) updateQuantized.add(q);
                boolean float32 = allFloat32(o) && !batch.quantized();
                for (int j = 0; j < KERNEL_OPERANDS; j++) {
                    views.add(float32 && o[j] != null ? o[j].floats(chunkStart, chunkEnd - chunkStart) : null);
                }
            }
        }
        chunkGrad = grads.toArray(new HostBuffer[0]);
        chunkFrom = from.toArray();
        chunkTo = to.toArray();
        updateKernel = kernels.toArray(new UpdateKernel[0]);
        updateGroup = updateGroups.toArray();
        updateFrom = updateFroms.toArray();
        updateTo = updateTos.toArray();
        operands = updateOperands.toArray(new HostBuffer[0]);
        float32Operands = views.toArray(new FloatBuffer[0]);
        quantizedSlots = updateQuantized.toArray(new HostQuantizedBuffer[0]);
        allFloat32 = new boolean[updateKernel.length];
        for (int u = 0; u < allFloat32.length; u++) allFloat32[u] = float32Operands[u * KERNEL_OPERANDS] != null;
        updateChunk = updateChunks.toArray();
        updateStream = updateStreams.toArray();
        partials = new double[chunkGrad.length];
        partialPositions = GradientStatistics.registrationPositions(batches);
        norms = TensorNorms.of(batches);
        matrices = HostMatrixPhase.of(batches, matrixProducts, false);
        factored = FactoredStep.of(batches);
    }


    @Override
    public void run() {
        int checked = 0; // partial sums written; the total is read only when the gradient is checked
        if (control.checkGrads) {
            for (int c = 0; c < chunkGrad.length; c++) {
                partials[partialPositions[c]] = GradientStatistics.chunkSumOfSquares(chunkGrad[c], chunkFrom[c], chunkTo[c],
                        control.invGradScale, lanes);
            }
            checked = chunkGrad.length;
        }
        control.finalizeStep(total(partials, checked, lanes), groups);
        if (control.skip) return;
        if (norms != null) computeNorms();
        int group = -1;
        int flags = 0;
        boolean gradPrepared = false;
        for (int u = 0; u < updateKernel.length; u++) {
            if (updateGroup[u] != group) { // the scalars do not change during the updates: copied once per run of a group's updates
                group = updateGroup[u];
                System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
                flags = groups.flags()[group];
                gradPrepared = KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP);
            }
            if (norms != null && updateChunk[u] >= 0 && norms.covers(updateChunk[u])) norms.tensorScalars(updateChunk[u], scalars, flags);
            if (!allFloat32[u]) {
                updateWidened(u, flags);
            } else if (gradPrepared) {
                updatePreparingGrad(u, flags);
            } else {
                ReferenceKernels.run(updateKernel[u], float32Operands, u * KERNEL_OPERANDS, 0, updateTo[u] - updateFrom[u], scalars, flags);
            }
        }
        if (matrices != null) matrices.run(groups, control);
        if (factored != null) factored.run(groups, control);
    }

    /**
     * The layer-wise kernels' norm pass, chunk by chunk, then each tensor's sums (the device's
     * order). Their tensors form no runs: each of their chunks is one update.
     */
    private void computeNorms() {
        if (normScratch == null) normScratch = new TensorNorms.Scratch();
        for (int u = 0; u < updateKernel.length; u++) {
            int c = updateChunk[u];
            if (c < 0 || !norms.covers(c)) continue;
            int group = updateGroup[u];
            System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
            norms.chunk(c, operands, u * OPERANDS, updateFrom[u], updateTo[u], scalars, groups.flags()[group], control, normScratch);
        }
        norms.reduce();
    }

    /** A float32 update whose gradient is unscaled or clipped: the gradient into scratch, the other operands in place. */
    private void updatePreparingGrad(int u, int flags) {
        int n = updateTo[u] - updateFrom[u];
        int base = u * KERNEL_OPERANDS;
        ensureScratch();
        float[] grad = scratch[1];
        float32Operands[base + 1].get(0, grad, 0, n);
        for (int i = 0; i < n; i++) grad[i] = control.prepareGrad(grad[i], flags);
        for (int j = 0; j < KERNEL_OPERANDS; j++) {
            FloatBuffer operand = j == 1 ? scratchBuffers[1] : float32Operands[base + j];
            if (gathered[j] != operand) gathered[j] = operand; // a reference store costs a write barrier: only when it changes
        }
        ReferenceKernels.run(updateKernel[u], gathered, 0, n, scalars, flags);
    }

    /**
     * A chunk with a 16-bit operand, a master or 8-bit states: through scratch, element by element.
     * An 8-bit state is dequantized into scratch, updated there, and each of its blocks quantized
     * again with the block's new absmax (a chunk starts on a block boundary).
     */
    private void updateWidened(int u, int flags) {
        int from = updateFrom[u], to = updateTo[u];
        int base = u * OPERANDS;
        HostBuffer master = operands[base + MASTER];
        int n = to - from;
        ensureScratch();
        for (int i = 0; i < n; i++) {
            int k = from + i;
            scratch[0][i] = master != null ? master.get(k) : operands[base].get(k);
            scratch[1][i] = control.prepareGrad(operands[base + 1].get(k), flags);
            for (int j = 2; j < KERNEL_OPERANDS; j++) if (operands[base + j] != null) scratch[j][i] = operands[base + j].get(k);
        }
        int quantizedBase = u * SLOTS;
        for (int j = 0; j < SLOTS; j++) {
            HostQuantizedBuffer q = quantizedSlots[quantizedBase + j];
            if (q != null) dequantize(q, from, n, scratch[2 + j]);
        }
        for (int j = 0; j < KERNEL_OPERANDS; j++) {
            boolean present = operands[base + j] != null || (j >= 2 && quantizedSlots[quantizedBase + j - 2] != null);
            FloatBuffer operand = present ? scratchBuffers[j] : null;
            if (gathered[j] != operand) gathered[j] = operand; // a reference store costs a write barrier: only when it changes
        }
        ReferenceKernels.run(updateKernel[u], gathered, 0, n, scalars, flags);
        HostBuffer param = operands[base];
        boolean stochastic = KernelFlags.has(flags, KernelFlags.STOCHASTIC_ROUNDING) && master == null
                && param.precision() != Precision.FP32;
        for (int i = 0; i < n; i++) {
            int k = from + i;
            if (master != null) master.set(k, scratch[0][i]);
            if (stochastic) {
                param.setBits(k, rounding.narrow(param.precision(), scratch[0][i], control.roundingSeed, control.step, updateStream[u], k));
            } else {
                param.set(k, scratch[0][i]);
            }
            for (int j = 2; j < KERNEL_OPERANDS; j++) if (operands[base + j] != null) operands[base + j].set(k, scratch[j][i]);
        }
        for (int j = 0; j < SLOTS; j++) {
            HostQuantizedBuffer q = quantizedSlots[quantizedBase + j];
            if (q != null) quantize(scratch[2 + j], q, from, n);
        }
    }

    /** Elements [from, from + n) of {@code state} (from on a block boundary) into {@code out[0, n)}: map[code] * absmax. */
    private static void dequantize(HostQuantizedBuffer state, int from, int n, float[] out) {
        byte[] codes = state.codes();
        float[] absmax = state.absmax();
        BlockwiseQuantization.CodeMap map = state.codeMap();
        for (int i = 0; i < n; i++) out[i] = map.value(codes[from + i] & 0xFF) * absmax[(from + i) / BLOCK];
    }

    /** {@code values[0, n)} into elements [from, from + n) of {@code state} (from on a block boundary), block by block. */
    private static void quantize(float[] values, HostQuantizedBuffer state, int from, int n) {
        byte[] codes = state.codes();
        float[] absmax = state.absmax();
        for (int first = 0; first < n; first += BLOCK) {
            absmax[(from + first) / BLOCK] = BlockwiseQuantization.quantizeBlock(values, first, Math.min(BLOCK, n - first),
                    state.codeMap(), codes, from + first);
        }
    }

    private static boolean allFloat32(HostBuffer[] o) {
        if (o[MASTER] != null) return false;
        for (int j = 0; j < KERNEL_OPERANDS; j++) if (o[j] != null && o[j].precision() != Precision.FP32) return false;
        return true;
    }

    private void ensureScratch() {
        if (scratch == null) {
            scratch = new float[KERNEL_OPERANDS][CHUNK];
            scratchBuffers = new FloatBuffer[KERNEL_OPERANDS];
            for (int j = 0; j < KERNEL_OPERANDS; j++) scratchBuffers[j] = FloatBuffer.wrap(scratch[j]);
        }
    }

    @Override
    public void close() {
        scratch = null;
        scratchBuffers = null;
        normScratch = null;
    }
}
