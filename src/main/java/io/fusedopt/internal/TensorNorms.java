package io.fusedopt.internal;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.List;

/**
 * The per-tensor sums of squares of the layer-wise kernels ({@link LayerwiseKernel}) in a host step
 * program, in the device's order, so that every backend gets the same bits:
 * <ol>
 *   <li>per chunk of the segment table ({@code fo_multi_tensor_norms} in
 *       kernels/fusedopt_common.cuh), for each of the kernel's two values a and b: the partial sum
 *       of squares in the gradient statistics' order ({@link GradientStatistics#chunkSumOfSquares});</li>
 *   <li>per tensor ({@code fusedopt_tensor_norms} in kernels/control.cu): the sum of its chunks'
 *       partial sums in the finalize kernel's order ({@link GradientStatistics#totalOf}).</li>
 * </ol>
 * The chunks are the program's: numbered launch by launch (batch by batch), chunk by chunk, as
 * both host programs number them; a tensor's chunks are consecutive.
 */
public final class TensorNorms {
    private static final int LANES = GradientStatistics.LANES;
    private static final int CHUNK = (int) SegmentTable.CHUNK_ELEMENTS;
    /** The master's place among a chunk's operands {param, grad, slot0..2, master} ({@link #chunk}). */
    private static final int MASTER = 5;

    /** Per chunk: its kernel where it is layer-wise, else null. */
    private final LayerwiseKernel[] chunkKernel;
    /** Per chunk: its tensor's index among the layer-wise tensors, or -1. */
    private final int[] chunkTensor;
    /** Per layer-wise tensor: its first chunk and its number of chunks. */
    private final int[] firstChunk;
    private final int[] chunkCount;
    private final double[] chunkSums;  // 2 per chunk: a, b
    private final double[] tensorSums; // 2 per layer-wise tensor
    private final double[] lanes = new double[LANES];

    private TensorNorms(LayerwiseKernel[] chunkKernel, int[] chunkTensor, int[] firstChunk, int[] chunkCount) {
        this.chunkKernel = chunkKernel;
        this.chunkTensor = chunkTensor;
        this.firstChunk = firstChunk;
        this.chunkCount = chunkCount;
        this.chunkSums = new double[2 * chunkKernel.length];
        this.tensorSums = new double[2 * firstChunk.length];
    }

    /** The norms of the layer-wise batches among {@code batches}, or null where there is none. */
    public static TensorNorms of(List<KernelBatch> batches) {
        int chunks = 0, tensors = 0;
        SegmentTable[] tables = new SegmentTable[batches.size()];
        for (int b = 0; b < batches.size(); b++) {
            List<TensorOperands> batch = batches.get(b).tensors();
            long[] lengths = new long[batch.size()];
            for (int t = 0; t < lengths.length; t++) lengths[t] = batch.get(t).param().length();
            tables[b] = SegmentTable.of(lengths);
            chunks += tables[b].chunkCount();
            if (batches.get(b).kernel() instanceof LayerwiseKernel) tensors += lengths.length;
        }
        if (tensors == 0) return null;
        LayerwiseKernel[] kernel = new LayerwiseKernel[chunks];
        int[] tensorOf = new int[chunks];
        Arrays.fill(tensorOf, -1);
        int[] first = new int[tensors];
        int[] count = new int[tensors];
        int c = 0, next = 0;
        for (int b = 0; b < batches.size(); b++) {
            SegmentTable table = tables[b];
            if (!(batches.get(b).kernel() instanceof LayerwiseKernel layerwise)) {
                c += table.chunkCount();
                continue;
            }
            int base = next;
            next += table.tensorCount();
            // An empty tensor has no chunk: its sums stay 0.
            for (int t = 0; t < table.tensorCount(); t++) first[base + t] = c;
            for (int k = 0; k < table.chunkCount(); k++, c++) {
                int t = base + table.tensor(k);
                kernel[c] = layerwise;
                tensorOf[c] = t;
                if (count[t]++ == 0) first[t] = c;
            }
        }
        return new TensorNorms(kernel, tensorOf, first, count);
    }

    /** Whether chunk {@code c} runs a layer-wise kernel. */
    public boolean covers(int c) {
        return chunkTensor[c] >= 0;
    }

    /** One thread's scratch for {@link #chunk}: a chunk of each kernel operand and of a and b. */
    public static final class Scratch {
        private final float[][] operands = new float[5][];
        private final FloatBuffer[] views = new FloatBuffer[5];
        /** The operands the kernel reads: views, null where the chunk's tensor has no such operand. */
        private final FloatBuffer[] kernelOperands = new FloatBuffer[5];
        private final float[] a = new float[CHUNK];
        private final float[] b = new float[CHUNK];
        private final double[] lanes = new double[LANES];

        private FloatBuffer view(int j) {
            if (operands[j] == null) {
                operands[j] = new float[CHUNK];
                views[j] = FloatBuffer.wrap(operands[j]);
            }
            return views[j];
        }
    }

    /**
     * The norm pass of chunk {@code c}, elements [from, to) of its tensor: the operands {param, grad,
     * slot0..2, master} at {@code o[base]} to {@code o[base + 5]} (null where absent) are read as
     * float32 (the master instead of the param where there is one, the gradient prepared by
     * {@code control}: unscaled and clipped by the step's factors), the kernel gives a and b per
     * element, and the chunk's two partial sums are kept. Chunks may run on several threads at
     * once, each with its own scratch.
     */
    public void chunk(int c, AbstractTensorBuffer[] o, int base, long from, long to, float[] s, int flags, StepControl control,
                      Scratch scratch) {
        LayerwiseKernel kernel = chunkKernel[c];
        int n = (int) (to - from);
        AbstractTensorBuffer param = o[base + MASTER] != null ? o[base + MASTER] : o[base];
        FloatBuffer[] operands = scratch.kernelOperands;
        operands[0] = scratch.view(0);
        operands[1] = scratch.view(1);
        param.read(from, operands[0].array(), 0, n);
        float[] g = operands[1].array();
        o[base + 1].read(from, g, 0, n);
        if (KernelFlags.has(flags, KernelFlags.UNSCALE) || KernelFlags.has(flags, KernelFlags.CLIP)) {
            for (int i = 0; i < n; i++) g[i] = control.prepareGrad(g[i], flags);
        }
        for (int j = 2; j < 5; j++) {
            AbstractTensorBuffer slot = o[base + j];
            operands[j] = null;
            if (slot == null) continue;
            // The kernel sees every state slot its update sees (null where the variant has none);
            // only the ones its norm pass reads are filled.
            operands[j] = scratch.view(j);
            if (kernel.normsReadState()) slot.read(from, operands[j].array(), 0, n);
        }
        kernel.normInputs(operands, 0, 0, n, s, flags, scratch.a, scratch.b);
        chunkSums[2 * c] = GradientStatistics.chunkSumOfSquares(scratch.a, n, scratch.lanes);
        chunkSums[2 * c + 1] = GradientStatistics.chunkSumOfSquares(scratch.b, n, scratch.lanes);
    }

    /** Each layer-wise tensor's two sums from its chunks' partial sums, once every chunk ran. */
    public void reduce() {
        for (int t = 0; t < firstChunk.length; t++) {
            for (int j = 0; j < 2; j++) {
                tensorSums[2 * t + j] = GradientStatistics.totalOf(chunkSums, 2 * firstChunk[t] + j, chunkCount[t], 2, lanes);
            }
        }
    }

    /**
     * The sum of squares of one whole tensor's {@code values} in this order (its chunks' partial
     * sums, then their sum): what the norm pass and the per-tensor sums give for it.
     */
    public static double sumOfSquares(float[] values) {
        return sumOfSquares(values, values.length, new double[LANES], new double[(int) SegmentTable.chunksOf(values.length)]);
    }

    /**
     * {@link #sumOfSquares(float[])} of the tensor {@code values[0, n)}, with scratch: {@code lanes}
     * of {@link GradientStatistics#LANES} doubles and {@code partials} of at least
     * {@link SegmentTable#chunksOf chunksOf(n)}, so that a step allocates nothing.
     */
    public static double sumOfSquares(float[] values, int n, double[] lanes, double[] partials) {
        int count = (int) SegmentTable.chunksOf(n);
        for (int c = 0; c < count; c++) {
            int start = c * CHUNK;
            partials[c] = GradientStatistics.chunkSumOfSquares(values, start, Math.min(CHUNK, n - start), lanes);
        }
        return GradientStatistics.totalOf(partials, 0, count, 1, lanes);
    }

    /** Completes the step's scalars {@code s} of chunk {@code c} with its tensor's own ({@link LayerwiseKernel#tensorScalars}). */
    public void tensorScalars(int c, float[] s, int flags) {
        int t = chunkTensor[c];
        chunkKernel[c].tensorScalars(tensorSums[2 * t], tensorSums[2 * t + 1], s, flags);
    }
}
