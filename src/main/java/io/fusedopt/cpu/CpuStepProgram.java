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
import java.util.List;
import java.util.function.Function;

/**
 * The CPU form of a step, in the device's order: gradient statistics chunk by chunk, the finalize
 * computation, then the updates chunk by chunk over the same segment tables. Float32 tensors whose
 * gradient needs no unscaling or clipping are updated in place; any other tensor is widened into
 * scratch arrays, updated there by the same {@link ReferenceKernels}, and stored back (rounded to
 * its formats, the fp32 master written first), which is what the mixed kernels do element by element.
 */
final class CpuStepProgram extends HostStepProgram {
    private static final int CHUNK = (int) SegmentTable.CHUNK_ELEMENTS;

    private final List<KernelBatch> batches;
    private final SegmentTable[] tables;
    private final HostBuffer[][][] operands; // [batch][tensor][param, grad, slot0..2, master]
    /** [batch][tensor] the float32 views {param, grad, slot0..2}, null unless every operand is float32. */
    private final FloatBuffer[][][] float32Operands;
    private final GroupTable groups;
    private final double[] partials;
    private final double[] lanes = new double[GradientStatistics.LANES];
    private final float[] scalars = new float[StepScalars.SCALAR_STRIDE];
    private float[][] scratch; // param, grad, slot0..2, allocated at the first widened chunk
    private FloatBuffer[] scratchBuffers;
    private final FloatBuffer[] gathered = new FloatBuffer[5];

    CpuStepProgram(List<KernelBatch> batches, GroupTable groups, Function<AbstractTensorBuffer, HostBuffer> host) {
        this.batches = List.copyOf(batches);
        this.groups = groups;
        this.tables = new SegmentTable[batches.size()];
        this.operands = new HostBuffer[batches.size()][][];
        this.float32Operands = new FloatBuffer[batches.size()][][];
        int chunks = 0;
        for (int b = 0; b < batches.size(); b++) {
            List<TensorOperands> tensors = batches.get(b).tensors();
            long[] lengths = new long[tensors.size()];
            operands[b] = new HostBuffer[tensors.size()][];
            float32Operands[b] = new FloatBuffer[tensors.size()][];
            for (int t = 0; t < tensors.size(); t++) {
                TensorOperands tensor = tensors.get(t);
                lengths[t] = tensor.param().length();
                HostBuffer[] o = new HostBuffer[6];
                o[0] = host.apply(tensor.param());
                o[1] = host.apply(tensor.grad());
                for (int j = 0; j < tensor.slots().length; j++) o[2 + j] = tensor.slots()[j] == null ? null : host.apply(tensor.slots()[j]);
                o[5] = tensor.master() == null ? null : host.apply(tensor.master());
                operands[b][t] = o;
                if (allFloat32(o)) {
                    float32Operands[b][t] = new FloatBuffer[5];
                    for (int j = 0; j < 5; j++) float32Operands[b][t][j] = o[j] == null ? null : o[j].floats();
                }
            }
            tables[b] = SegmentTable.of(lengths);
            chunks += tables[b].chunkCount();
        }
        partials = new double[chunks];
    }

    @Override
    public void run() {
        int checked = 0; // partial sums written; the total is read only when the gradient is checked
        if (control.checkGrads) {
            for (int b = 0; b < tables.length; b++) {
                SegmentTable table = tables[b];
                for (int c = 0; c < table.chunkCount(); c++) {
                    HostBuffer grad = operands[b][table.tensor(c)][1];
                    partials[checked++] = GradientStatistics.chunkSumOfSquares(k -> grad.get((int) k), table.start(c), table.end(c),
                            control.invGradScale, lanes);
                }
            }
        }
        control.finalizeStep(GradientStatistics.totalOf(partials, checked, lanes), groups);
        if (control.skip) return;
        for (int b = 0; b < tables.length; b++) {
            SegmentTable table = tables[b];
            UpdateKernel kernel = batches.get(b).kernel();
            for (int c = 0; c < table.chunkCount(); c++) {
                int t = table.tensor(c);
                int group = batches.get(b).tensors().get(t).group();
                System.arraycopy(groups.scalars(), group * StepScalars.SCALAR_STRIDE, scalars, 0, StepScalars.SCALAR_STRIDE);
                updateChunk(kernel, operands[b][t], float32Operands[b][t], (int) table.start(c), (int) table.end(c),
                        groups.flags()[group]);
            }
        }
    }

    private void updateChunk(UpdateKernel kernel, HostBuffer[] o, FloatBuffer[] float32, int from, int to, int flags) {
        boolean gradPrepared = KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP);
        if (!gradPrepared && float32 != null) {
            ReferenceKernels.run(kernel, float32, from, to, scalars, flags);
            return;
        }
        int n = to - from;
        ensureScratch();
        for (int i = 0; i < n; i++) {
            int k = from + i;
            scratch[0][i] = o[5] != null ? o[5].get(k) : o[0].get(k);
            scratch[1][i] = control.prepareGrad(o[1].get(k), flags);
            for (int j = 2; j < 5; j++) if (o[j] != null) scratch[j][i] = o[j].get(k);
        }
        for (int j = 0; j < 5; j++) gathered[j] = o[j] == null ? null : scratchBuffers[j];
        ReferenceKernels.run(kernel, gathered, 0, n, scalars, flags);
        for (int i = 0; i < n; i++) {
            int k = from + i;
            if (o[5] != null) o[5].set(k, scratch[0][i]);
            o[0].set(k, scratch[0][i]);
            for (int j = 2; j < 5; j++) if (o[j] != null) o[j].set(k, scratch[j][i]);
        }
    }

    private static boolean allFloat32(HostBuffer[] o) {
        if (o[5] != null) return false;
        for (int j = 0; j < 5; j++) if (o[j] != null && o[j].precision() != Precision.FP32) return false;
        return true;
    }

    private void ensureScratch() {
        if (scratch == null) {
            scratch = new float[5][CHUNK];
            scratchBuffers = new FloatBuffer[5];
            for (int j = 0; j < 5; j++) scratchBuffers[j] = FloatBuffer.wrap(scratch[j]);
        }
    }

    @Override
    public void close() {
        scratch = null;
        scratchBuffers = null;
    }
}
