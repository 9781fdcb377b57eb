package io.fusedopt.bench;

import io.fusedopt.Precision;
import io.fusedopt.StateQuantization;
import io.fusedopt.cpu.BenchmarkTeam;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.UpdatePlan;
import java.util.Arrays;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The honest roofline of one {@code CPU_FAST} step: a kernel that reads and writes exactly the
 * arrays the update does (same tensors, same lengths, same element formats), cut into the same
 * 2^16-element chunks of the segment table and run by the fast backend's own worker team of the
 * same size ({@link BenchmarkTeam}), but whose arithmetic is one add per written element. Its time
 * is what this traffic costs on this machine; an update's time divided into it is how close the
 * update is to its own memory limit (an all-core copy moves different arrays with different
 * read/write ratios, so it is only context).
 *
 * <p>Traffic per element (read + written bytes), from {@link UpdatePlan#bytesPerElement}: in fp32
 * the param and grad are read, the param written, every used state read and written (SGD 12,
 * momentum, plain RMSProp and Adagrad 20, Adam/AdamW and centered RMSProp 28, AMSGrad and centered
 * RMSProp with momentum 36). With bf16 params and grads and an fp32 master (the fast backend's
 * widening path, FastStepProgram): the fp32 master, the bf16 grad and the states are read; the
 * master, the bf16 param and the states are written (the bf16 param is not read). With 8-bit
 * states ({@code quantized}, storages "fp32-q8" and "bf16-master-q8"), a tensor of at least
 * {@link StateQuantization#MIN_ELEMENTS} elements reads and writes each state's code bytes and its
 * float32 absmax per block of 256 instead of float states ({@link UpdatePlan#quantizedBytesPerStep}):
 * 16.06 B per fp32 Adam param; a smaller tensor keeps float states, as the optimizer does.
 *
 * <p>The operands are Java arrays and the loops use the Vector API's array entry points
 * ({@code fromArray}/{@code intoArray}), which exist unchanged from JDK 17 to 25 and reach the
 * memory system's limit; memory is memory, so the bytes cost the same as in the backend's
 * off-heap buffers, and a gap between the two is the update's code, which is what this
 * measurement is for.
 */
final class SameTrafficKernel implements AutoCloseable {
    static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    /** Shorts with as many lanes as {@link #FLOATS}: one bf16 vector per float vector. */
    static final VectorSpecies<Short> SHORTS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));
    /** Bytes with as many bytes as {@link #FLOATS} has bits / 8: the 8-bit states' codes. */
    static final VectorSpecies<Byte> BYTES = VectorSpecies.of(byte.class, FLOATS.vectorShape());
    private static final int BLOCK = BlockwiseQuantization.BLOCK;
    /** As FastStepProgram: below two chunks a step runs on the calling thread. */
    static final long PARALLEL_MIN_ELEMENTS = 2 * SegmentTable.CHUNK_ELEMENTS;
    /** bf16 1e-3, the grad's value (its bits are what the bf16 param receives). */
    private static final short BF16_GRAD = (short) (Float.floatToIntBits(1e-3f) >>> 16);
    /** What each written float element gets added per step; small, so values stay normal for years of steps. */
    private static final float INCREMENT = 1e-3f;

    /**
     * What one element's update moves: {@code states} state arrays (fp32, or 8-bit codes with a
     * float absmax per block where {@code quantized} and the tensor is large enough), and either
     * fp32 param and grad updated in place or bf16 param and grad with an fp32 master.
     */
    record Traffic(int states, boolean bf16Master, boolean quantized) {
        Traffic {
            if (states < 0 || states > 3) throw new IllegalArgumentException("an update has 0 to 3 state arrays, got " + states);
        }

        /** The traffic of StepBenchmark's {@code algorithm} in StepBenchmark's {@code storage}. */
        static Traffic of(String algorithm, String storage) {
            Precision p = StepBenchmark.paramPrecision(storage);
            return new Traffic(UpdatePlan.of(StepBenchmark.config(algorithm)).usedSlots(), p != Precision.FP32,
                    StepBenchmark.stateQuantization(storage) == StateQuantization.BLOCKWISE_8BIT);
        }

        /** Whether a tensor of {@code length} elements keeps 8-bit states. */
        boolean quantizes(long length) {
            return quantized && length >= StateQuantization.MIN_ELEMENTS;
        }

        /** Bytes read plus written per element with float32 states. */
        int bytesPerElement() {
            return bf16Master ? (Float.BYTES + Short.BYTES + states * Float.BYTES) * 2
                    : (2 * Float.BYTES + states * Float.BYTES) + (Float.BYTES + states * Float.BYTES);
        }

        /** Bytes read plus written by one step over tensors of these lengths. */
        long bytesPerStep(long[] lengths) {
            long bytes = 0;
            for (long n : lengths) {
                bytes += bytesPerElement() * n;
                // codes instead of floats, each way; an absmax per block, each way
                if (quantizes(n)) bytes -= 2L * states * ((Float.BYTES - 1) * n - Float.BYTES * ((n + BLOCK - 1) / BLOCK));
            }
            return bytes;
        }

        /** For the report: what is read and written. */
        String describe() {
            String s = states == 0 ? "" : ", " + states + (quantized ? " 8-bit" : "") + (states == 1 ? " state" : " states");
            return bf16Master ? "reads fp32 master, bf16 grad" + s + "; writes master, bf16 param" + s
                    : "reads param, grad" + s + "; writes param" + s;
        }
    }

    private final Traffic traffic;
    private final int[] itemTensor;
    private final int[] itemStart;
    private final int[] itemLength;
    // Per tensor; fp32: floatParam and floatGrad; bf16-master: master, shortParam and shortGrad.
    private final float[][] floatParam;
    private final float[][] floatGrad;
    private final float[][] master;
    private final short[][] shortParam;
    private final short[][] shortGrad;
    private final float[][][] states; // [tensor][state]; no arrays for a tensor with 8-bit states
    private final byte[][][] codes;   // [tensor][state]: 8-bit states' codes; no arrays for a tensor with float states
    private final float[][][] absmax; // [tensor][state]: their absmax per block
    private final boolean[] quantizedTensor;
    private final BenchmarkTeam team;
    private final boolean parallel;
    private final BenchmarkTeam.Task task = this::runItem;

    /**
     * Allocates the operands of tensors of these lengths and a team of {@code threads} threads.
     *
     * @throws IllegalArgumentException when there are no tensors, a length is not in 1 to 2^31 - 1
     *     (one Java array per operand), or threads is below 1
     */
    SameTrafficKernel(Traffic traffic, long[] lengths, int threads) {
        if (lengths.length == 0) throw new IllegalArgumentException("the same-traffic kernel needs at least one tensor");
        if (threads < 1) throw new IllegalArgumentException("the same-traffic kernel needs at least 1 thread, got " + threads);
        for (int t = 0; t < lengths.length; t++) {
            if (lengths[t] < 1 || lengths[t] > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("tensor " + t + " has " + lengths[t]
                        + " elements; the same-traffic kernel holds each operand in one Java array (1 to 2^31 - 9 elements)");
            }
        }
        this.traffic = traffic;
        SegmentTable table = SegmentTable.of(lengths);
        int items = table.chunkCount();
        itemTensor = new int[items];
        itemStart = new int[items];
        itemLength = new int[items];
        for (int c = 0; c < items; c++) {
            itemTensor[c] = table.tensor(c);
            itemStart[c] = (int) table.start(c);
            itemLength[c] = (int) (table.end(c) - table.start(c));
        }
        int n = lengths.length;
        boolean bf16 = traffic.bf16Master();
        floatParam = new float[n][];
        floatGrad = new float[n][];
        master = new float[n][];
        shortParam = new short[n][];
        shortGrad = new short[n][];
        states = new float[n][traffic.states()][];
        codes = new byte[n][traffic.states()][];
        absmax = new float[n][traffic.states()][];
        quantizedTensor = new boolean[n];
        for (int t = 0; t < n; t++) {
            int length = (int) lengths[t];
            if (bf16) {
                master[t] = filled(length, 1f);
                shortParam[t] = new short[length];
                shortGrad[t] = new short[length];
                Arrays.fill(shortGrad[t], BF16_GRAD);
            } else {
                floatParam[t] = filled(length, 1f);
                floatGrad[t] = filled(length, 1e-3f);
            }
            quantizedTensor[t] = traffic.quantizes(length);
            for (int s = 0; s < traffic.states(); s++) {
                if (quantizedTensor[t]) {
                    codes[t][s] = new byte[length];
                    absmax[t][s] = new float[BlockwiseQuantization.blocks(length)];
                } else {
                    states[t][s] = new float[length];
                }
            }
        }
        parallel = TensorSets.total(lengths) >= PARALLEL_MIN_ELEMENTS;
        team = new BenchmarkTeam(threads);
    }

    private static float[] filled(int length, float value) {
        float[] a = new float[length];
        Arrays.fill(a, value);
        return a;
    }

    Traffic traffic() {
        return traffic;
    }

    /** One pass over every chunk: the same-traffic "step". */
    void run() {
        if (parallel) {
            team.run(itemTensor.length, task);
        } else {
            for (int i = 0; i < itemTensor.length; i++) runItem(0, i);
        }
    }

    // For tests: the operands of tensor t.
    float[] floatParam(int t) { return floatParam[t]; }
    float[] master(int t) { return master[t]; }
    short[] shortParam(int t) { return shortParam[t]; }
    float[] state(int t, int s) { return states[t][s]; }
    byte[] codes(int t, int s) { return codes[t][s]; }
    float[] absmax(int t, int s) { return absmax[t][s]; }

    private void runItem(int worker, int item) {
        int t = itemTensor[item];
        int from = itemStart[item];
        int to = from + itemLength[item];
        if (quantizedTensor[t]) {
            quantizedItem(t, from, to);
            return;
        }
        float[][] s = states[t];
        if (traffic.bf16Master()) {
            switch (s.length) {
                case 0 -> widened0(master[t], shortParam[t], shortGrad[t], from, to);
                case 1 -> widened1(master[t], shortParam[t], shortGrad[t], s[0], from, to);
                case 2 -> widened2(master[t], shortParam[t], shortGrad[t], s[0], s[1], from, to);
                default -> widened3(master[t], shortParam[t], shortGrad[t], s[0], s[1], s[2], from, to);
            }
        } else {
            switch (s.length) {
                case 0 -> inPlace0(floatParam[t], floatGrad[t], from, to);
                case 1 -> inPlace1(floatParam[t], floatGrad[t], s[0], from, to);
                case 2 -> inPlace2(floatParam[t], floatGrad[t], s[0], s[1], from, to);
                default -> inPlace3(floatParam[t], floatGrad[t], s[0], s[1], s[2], from, to);
            }
        }
    }

    /**
     * A chunk of a tensor with 8-bit states: the param and grad as without states, then each
     * state's codes (one add each) and its blocks' absmax (the chunk starts on a block boundary).
     */
    private void quantizedItem(int t, int from, int to) {
        if (traffic.bf16Master()) widened0(master[t], shortParam[t], shortGrad[t], from, to);
        else inPlace0(floatParam[t], floatGrad[t], from, to);
        for (int s = 0; s < codes[t].length; s++) {
            byte[] c = codes[t][s];
            int i = from;
            for (int end = from + BYTES.loopBound(to - from); i < end; i += BYTES.length()) {
                ByteVector.fromArray(BYTES, c, i).add((byte) 1).intoArray(c, i);
            }
            for (; i < to; i++) c[i]++;
            float[] a = absmax[t][s];
            for (int b = from / BLOCK, last = (to - 1) / BLOCK; b <= last; b++) a[b] += INCREMENT;
        }
    }

    // One loop per state count, so that the vector loop has no per-element branches. In place (fp32):
    // every written array gets the grad added. The elements after the last whole vector run as scalars.

    private static void inPlace0(float[] p, float[] g, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            FloatVector.fromArray(FLOATS, p, i).add(FloatVector.fromArray(FLOATS, g, i)).intoArray(p, i);
        }
        for (; i < to; i++) p[i] += g[i];
    }

    private static void inPlace1(float[] p, float[] g, float[] s0, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            FloatVector gv = FloatVector.fromArray(FLOATS, g, i);
            FloatVector.fromArray(FLOATS, p, i).add(gv).intoArray(p, i);
            FloatVector.fromArray(FLOATS, s0, i).add(gv).intoArray(s0, i);
        }
        for (; i < to; i++) {
            p[i] += g[i];
            s0[i] += g[i];
        }
    }

    private static void inPlace2(float[] p, float[] g, float[] s0, float[] s1, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            FloatVector gv = FloatVector.fromArray(FLOATS, g, i);
            FloatVector.fromArray(FLOATS, p, i).add(gv).intoArray(p, i);
            FloatVector.fromArray(FLOATS, s0, i).add(gv).intoArray(s0, i);
            FloatVector.fromArray(FLOATS, s1, i).add(gv).intoArray(s1, i);
        }
        for (; i < to; i++) {
            p[i] += g[i];
            s0[i] += g[i];
            s1[i] += g[i];
        }
    }

    private static void inPlace3(float[] p, float[] g, float[] s0, float[] s1, float[] s2, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            FloatVector gv = FloatVector.fromArray(FLOATS, g, i);
            FloatVector.fromArray(FLOATS, p, i).add(gv).intoArray(p, i);
            FloatVector.fromArray(FLOATS, s0, i).add(gv).intoArray(s0, i);
            FloatVector.fromArray(FLOATS, s1, i).add(gv).intoArray(s1, i);
            FloatVector.fromArray(FLOATS, s2, i).add(gv).intoArray(s2, i);
        }
        for (; i < to; i++) {
            p[i] += g[i];
            s0[i] += g[i];
            s1[i] += g[i];
            s2[i] += g[i];
        }
    }

    // Widened (bf16 param and grad, fp32 master): the grad's bits become the param (read once,
    // written once, as the backend's rounding store does) and every fp32 array gets INCREMENT.

    private static void widened0(float[] m, short[] p, short[] g, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            ShortVector.fromArray(SHORTS, g, i).intoArray(p, i);
            FloatVector.fromArray(FLOATS, m, i).add(INCREMENT).intoArray(m, i);
        }
        for (; i < to; i++) {
            p[i] = g[i];
            m[i] += INCREMENT;
        }
    }

    private static void widened1(float[] m, short[] p, short[] g, float[] s0, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            ShortVector.fromArray(SHORTS, g, i).intoArray(p, i);
            FloatVector.fromArray(FLOATS, m, i).add(INCREMENT).intoArray(m, i);
            FloatVector.fromArray(FLOATS, s0, i).add(INCREMENT).intoArray(s0, i);
        }
        for (; i < to; i++) {
            p[i] = g[i];
            m[i] += INCREMENT;
            s0[i] += INCREMENT;
        }
    }

    private static void widened2(float[] m, short[] p, short[] g, float[] s0, float[] s1, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            ShortVector.fromArray(SHORTS, g, i).intoArray(p, i);
            FloatVector.fromArray(FLOATS, m, i).add(INCREMENT).intoArray(m, i);
            FloatVector.fromArray(FLOATS, s0, i).add(INCREMENT).intoArray(s0, i);
            FloatVector.fromArray(FLOATS, s1, i).add(INCREMENT).intoArray(s1, i);
        }
        for (; i < to; i++) {
            p[i] = g[i];
            m[i] += INCREMENT;
            s0[i] += INCREMENT;
            s1[i] += INCREMENT;
        }
    }

    private static void widened3(float[] m, short[] p, short[] g, float[] s0, float[] s1, float[] s2, int from, int to) {
        int i = from;
        for (int end = from + FLOATS.loopBound(to - from); i < end; i += FLOATS.length()) {
            ShortVector.fromArray(SHORTS, g, i).intoArray(p, i);
            FloatVector.fromArray(FLOATS, m, i).add(INCREMENT).intoArray(m, i);
            FloatVector.fromArray(FLOATS, s0, i).add(INCREMENT).intoArray(s0, i);
            FloatVector.fromArray(FLOATS, s1, i).add(INCREMENT).intoArray(s1, i);
            FloatVector.fromArray(FLOATS, s2, i).add(INCREMENT).intoArray(s2, i);
        }
        for (; i < to; i++) {
            p[i] = g[i];
            m[i] += INCREMENT;
            s0[i] += INCREMENT;
            s1[i] += INCREMENT;
            s2[i] += INCREMENT;
        }
    }

    @Override
    public void close() {
        team.close();
    }
}
