package io.fusedopt.cpu;

import io.fusedopt.internal.SegmentTable;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs of consecutive small float32 tensors that a step updates as one range. The updates are
 * elementwise, each element by the same operations whatever its neighbours, so one kernel call
 * over tensors that lie side by side in every operand (params after params, grads after grads,
 * each state after the same state) gives each element the bits a call per tensor gives it. A call
 * per tensor of four elements cost its bookkeeping (views, a call, a loop's set-up), and at 10^5
 * tensors the cache misses of reading that bookkeeping, many times its arithmetic.
 *
 * <p>The backend carves small tensors from shared arrays in the order they are allocated
 * ({@link SmallTensorArena}): a model allocates a param, its grad, the next param..., and
 * registration allocates each tensor's states together, so a param's neighbour is its grad or
 * state, not the next param. Where a run's operand does not lie side by side, its elements are
 * moved, once, into one array of the run's length ({@link CarvedFloats#moveTo}); a later
 * preparation over the same tensors finds them side by side and moves nothing.
 *
 * <p>A run holds tensors of one batch (one kernel, float32 operands and no master), one group table
 * entry (one set of scalars) and one set of used state slots, all {@link CarvedFloats}; at most
 * {@link #MAX_RUN_ELEMENTS} elements, so that a run is at most one chunk, the fast backend's unit of
 * work and the length of its scratch. The arrays a move leaves keep their other tensors; a shared
 * array is freed once none of its tensors is left in it.
 */
final class SmallTensorRuns {
    private SmallTensorRuns() {}

    /** The most elements of one run: one chunk. */
    static final int MAX_RUN_ELEMENTS = (int) SegmentTable.CHUNK_ELEMENTS;
    /** Kernel operands: param, grad, slot0..2. */
    static final int OPERANDS = 5;

    /**
     * Tensors {@code [first, first + count)} of a batch, {@code length} elements in all: kernel
     * operand {@code j} (param, grad, slot0..2) holds them at {@code arrays[j][offsets[j]...]}
     * (null where the kernel takes no such operand), tensor after tensor in the batch's order.
     */
    record Run(int first, int count, int length, float[][] arrays, int[] offsets) {}

    /**
     * The runs of two or more tensors in one float32 batch, their elements moved side by side where
     * they were not; a tensor in no run is updated alone, as before.
     *
     * @param operands per tensor, its operands from its kernel operands on (param, grad, slot0..2; null where
     *     absent), which are read; a master after them is null in a float32 batch
     * @param lengths  per tensor, its length
     * @param groups   per tensor, its group table entry
     * @param inRun    set to true for every tensor a run holds
     */
    static List<Run> form(CarvedFloats[][] operands, long[] lengths, int[] groups, boolean[] inRun) {
        Locations at = new Locations(operands);
        List<Run> runs = new ArrayList<>();
        int tensors = operands.length;
        int t = 0;
        while (t < tensors) {
            if (!at.carved[t]) {
                t++;
                continue;
            }
            int first = t;
            long length = lengths[t++];
            while (t < tensors && at.carved[t] && groups[t] == groups[first] && sameSlots(operands[t], operands[first])
                    && length + lengths[t] <= MAX_RUN_ELEMENTS) {
                length += lengths[t++];
            }
            if (t - first < 2) continue; // one tensor gains nothing from a run
            runs.add(place(operands, at, lengths, first, t - first, (int) length));
            for (int k = first; k < t; k++) inRun[k] = true;
        }
        return runs;
    }

    /**
     * Where every operand of every tensor lies, read once: touching 10^5 tensors' buffers, scattered
     * over the heap, is most of the work of forming their runs.
     */
    private static final class Locations {
        /** Per tensor, whether every operand is carved (its operands may be moved). */
        final boolean[] carved;
        /** [tensor * OPERANDS + j]: operand j's array and where the tensor starts in it (of carved tensors). */
        final float[][] arrays;
        final int[] offsets;

        Locations(CarvedFloats[][] operands) {
            int tensors = operands.length;
            carved = new boolean[tensors];
            arrays = new float[tensors * OPERANDS][];
            offsets = new int[tensors * OPERANDS];
            for (int t = 0; t < tensors; t++) {
                boolean all = true;
                for (int j = 0; j < OPERANDS && all; j++) {
                    CarvedFloats o = operands[t][j];
                    if (o == null) continue;
                    float[] array = o.carvedArray();
                    all = array != null;
                    arrays[t * OPERANDS + j] = array;
                    if (all) offsets[t * OPERANDS + j] = o.carvedOffset();
                }
                carved[t] = all;
            }
        }
    }

    private static boolean sameSlots(CarvedFloats[] a, CarvedFloats[] b) {
        for (int j = 0; j < OPERANDS; j++) if ((a[j] == null) != (b[j] == null)) return false;
        return true;
    }

    /** The run's arrays: each operand where it already lies when its tensors are side by side, else moved into a new array. */
    private static Run place(CarvedFloats[][] operands, Locations at, long[] lengths, int first, int count, int length) {
        float[][] arrays = new float[OPERANDS][];
        int[] offsets = new int[OPERANDS];
        for (int j = 0; j < OPERANDS; j++) {
            if (operands[first][j] == null) continue;
            if (sideBySide(at, lengths, first, count, j)) {
                arrays[j] = at.arrays[first * OPERANDS + j];
                offsets[j] = at.offsets[first * OPERANDS + j];
            } else {
                SharedFloats target = new SharedFloats(new float[length]);
                int to = 0;
                for (int t = first; t < first + count; t++) {
                    operands[t][j].moveTo(target, to);
                    to += (int) lengths[t];
                }
                arrays[j] = target.array;
            }
        }
        return new Run(first, count, length, arrays, offsets);
    }

    /** Whether operand j of the tensors lies in one array, each tensor right after the one before. */
    private static boolean sideBySide(Locations at, long[] lengths, int first, int count, int j) {
        float[] array = at.arrays[first * OPERANDS + j];
        long next = at.offsets[first * OPERANDS + j];
        for (int t = first; t < first + count; t++) {
            if (at.arrays[t * OPERANDS + j] != array || at.offsets[t * OPERANDS + j] != next) return false;
            next += lengths[t];
        }
        return true;
    }
}
