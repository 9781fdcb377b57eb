package io.fusedopt.cpu;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.StochasticRounding;
import io.fusedopt.internal.TensorNorms;
import io.fusedopt.internal.TensorOperands;
import io.fusedopt.internal.UpdateKernel;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.function.Function;

/**
 * The CPU form of a step, in the device's order: gradient statistics chunk by chunk, the finalize
 * computation, then the updates chunk by chunk over the same segment tables. Float32 tensors whose
 * gradient needs no unscaling or clipping are updated in place; any other tensor is widened into
 * scratch arrays, updated there by the same {@link ReferenceKernels}, and stored back (rounded to
 * its formats, the fp32 master written first), which is what the mixed kernels do element by element.
 *
 * <p>What a chunk needs is resolved at preparation into flat arrays indexed by chunk (launch by
 * launch, chunk by chunk): a step over many small tensors then reads its bookkeeping front to back
 * instead of following several objects per tensor, which at 10^5 tensors cost more than the updates.
 */
final class CpuStepProgram extends HostStepProgram {
    private static final int CHUNK = (int) SegmentTable.CHUNK_ELEMENTS;
    /** Operands per chunk in {@link #operands}: param, grad, slot0..2, master. */
    private static final int OPERANDS = 6;
    private static final int MASTER = 5;
    /** Kernel operands per chunk in {@link #float32Operands}: param, grad, slot0..2. */
    private static final int KERNEL_OPERANDS = 5;

    private final GroupTable groups;
    private final UpdateKernel[] chunkKernel;
    /** The group table entry of each chunk's tensor. */
    private final int[] chunkGroup;
    /** Each chunk's elements [chunkFrom, chunkTo) of its tensor (a CPU tensor is one array: int indices). */
    private final int[] chunkFrom;
    private final int[] chunkTo;
    /** [chunk * OPERANDS + j]: param, grad, slot0..2, master (null where absent). */
    private final HostBuffer[] operands;
    /** [chunk * KERNEL_OPERANDS + j]: the float32 views {param, grad, slot0..2} where every operand is float32. */
    private final FloatBuffer[] float32Operands;
    private final boolean[] allFloat32;
    /** Each chunk's tensor's random stream for stochastic rounding ({@link TensorOperands#roundingStream}). */
    private final int[] chunkStream;
    private final StochasticRounding rounding = new StochasticRounding();
    private final double[] partials;
    /** The per-tensor norms of the layer-wise kernels' chunks; null when no kernel is layer-wise. */
    private final TensorNorms norms;
    private TensorNorms.Scratch normScratch;
    private final double[] lanes = new double[GradientStatistics.LANES];
    private final float[] scalars = new float[StepScalars.SCALAR_STRIDE];
    private float[][] scratch; // param, grad, slot0..2, allocated at the first widened chunk
    private FloatBuffer[] scratchBuffers;
    private final FloatBuffer[] gathered = new FloatBuffer[KERNEL_OPERANDS];

    CpuStepProgram(List<KernelBatch> batches, GroupTable groups, Function<AbstractTensorBuffer, HostBuffer> host) {
        this.groups = groups;
        SegmentTable[] tables = new SegmentTable[batches.size()];
        HostBuffer[][][] tensorOperands = new HostBuffer[batches.size()][][];
        int chunks = 0;
        for (int b = 0; b < batches.size(); b++) {
            List<TensorOperands> tensors = batches.get(b).tensors();
            long[] lengths = new long[tensors.size()];
            tensorOperands[b] = new HostBuffer[tensors.size()][];
            for (int t = 0; t < tensors.size(); t++) {
                TensorOperands tensor = tensors.get(t);
                lengths[t] = tensor.param().length();
                HostBuffer[] o = new HostBuffer[OPERANDS];
                o[0] = host.apply(tensor.param());
                o[1] = host.apply(tensor.grad());
                for (int j = 0; j < tensor.slots().length; j++) o[2 + j] = tensor.slots()[j] == null ? null : host.apply(tensor.slots()[j]);
                o[MASTER] = tensor.master() == null ? null : host.apply(tensor.master());
                tensorOperands[b][t] = o;
            }
            tables[b] = SegmentTable.of(lengths);
            chunks += tables[b].chunkCount();
        }
        chunkKernel = new UpdateKernel[chunks];
        chunkGroup = new int[chunks];
        chunkFrom = new int[chunks];
        chunkTo = new int[chunks];
        operands = new HostBuffer[chunks * OPERANDS];
        float32Operands = new FloatBuffer[chunks * KERNEL_OPERANDS];
        allFloat32 = new boolean[chunks];
        chunkStream = new int[chunks];
        int c = 0;
        for (int b = 0; b < batches.size(); b++) {
            SegmentTable table = tables[b];
            for (int k = 0; k < table.chunkCount(); k++, c++) {
                int t = table.tensor(k);
                HostBuffer[] o = tensorOperands[b][t];
                chunkKernel[c] = batches.get(b).kernel();
                chunkGroup[c] = batches.get(b).tensors().get(t).group();
                chunkFrom[c] = (int) table.start(k);
                chunkTo[c] = (int) table.end(k);
                chunkStream[c] = batches.get(b).tensors().get(t).roundingStream();
                System.arraycopy(o, 0, operands, c * OPERANDS, OPERANDS);
                allFloat32[c] = allFloat32(o);
                if (allFloat32[c]) {
                    for (int j = 0; j < KERNEL_OPERANDS; j++) float32Operands[c * KERNEL_OPERANDS + j] = o[j] == null ? null : o[j].floats().duplicate();
                }
            }
        }
        partials = new double[chunks];
        norms = TensorNorms.of(batches);
    }

    @Override
    public void run() {
        int chunks = chunkKernel.length;
        int checked = 0; // partial sums written; the total is read only when the gradient is checked
        if (control.checkGrads) {
            for (int c = 0; c < chunks; c++) {
                partials[checked++] = GradientStatistics.chunkSumOfSquares(operands[c * OPERANDS + 1], chunkFrom[c], chunkTo[c],
                        control.invGradScale, lanes);
            }
        }
        control.finalizeStep(GradientStatistics.totalOf(partials, checked, lanes), groups);
        if (control.skip) return;
        if (norms != null) computeNorms();
        int group = -1;
        int flags = 0;
        boolean gradPrepared = false;
        for (int c = 0; c < chunks; c++) {
            if (chunkGroup[c] != group) { // the scalars do not change during the updates: copied once per run of a group's chunks
                group = chunkGroup[c];
                System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
                flags = groups.flags()[group];
                gradPrepared = KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP);
            }
            if (norms != null && norms.covers(c)) norms.tensorScalars(c, scalars, flags);
            if (!gradPrepared && allFloat32[c]) {
                ReferenceKernels.run(chunkKernel[c], float32Operands, c * KERNEL_OPERANDS, chunkFrom[c], chunkTo[c], scalars, flags);
            } else {
                updateWidened(c, flags);
            }
        }
    }

    /** The layer-wise kernels' norm pass, chunk by chunk, then each tensor's sums (the device's order). */
    private void computeNorms() {
        if (normScratch == null) normScratch = new TensorNorms.Scratch();
        for (int c = 0; c < chunkKernel.length; c++) {
            if (!norms.covers(c)) continue;
            int group = chunkGroup[c];
            System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
            norms.chunk(c, operands, c * OPERANDS, chunkFrom[c], chunkTo[c], scalars, groups.flags()[group], control, normScratch);
        }
        norms.reduce();
    }

    /** A chunk with a 16-bit operand, a master or a gradient to unscale or clip: through scratch, element by element. */
    private void updateWidened(int c, int flags) {
        int from = chunkFrom[c], to = chunkTo[c];
        int base = c * OPERANDS;
        HostBuffer master = operands[base + MASTER];
        int n = to - from;
        ensureScratch();
        for (int i = 0; i < n; i++) {
            int k = from + i;
            scratch[0][i] = master != null ? master.get(k) : operands[base].get(k);
            scratch[1][i] = control.prepareGrad(operands[base + 1].get(k), flags);
            for (int j = 2; j < KERNEL_OPERANDS; j++) if (operands[base + j] != null) scratch[j][i] = operands[base + j].get(k);
        }
        for (int j = 0; j < KERNEL_OPERANDS; j++) {
            FloatBuffer operand = operands[base + j] == null ? null : scratchBuffers[j];
            if (gathered[j] != operand) gathered[j] = operand; // a reference store costs a write barrier: only when it changes
        }
        ReferenceKernels.run(chunkKernel[c], gathered, 0, n, scalars, flags);
        HostBuffer param = operands[base];
        boolean stochastic = KernelFlags.has(flags, KernelFlags.STOCHASTIC_ROUNDING) && master == null
                && param.precision() != Precision.FP32;
        for (int i = 0; i < n; i++) {
            int k = from + i;
            if (master != null) master.set(k, scratch[0][i]);
            if (stochastic) {
                param.setBits(k, rounding.narrow(param.precision(), scratch[0][i], control.roundingSeed, control.step, chunkStream[c], k));
            } else {
                param.set(k, scratch[0][i]);
            }
            for (int j = 2; j < KERNEL_OPERANDS; j++) if (operands[base + j] != null) operands[base + j].set(k, scratch[j][i]);
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
