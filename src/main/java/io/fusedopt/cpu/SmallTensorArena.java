package io.fusedopt.cpu;

import java.nio.ShortBuffer;

/**
 * Where the CPU backends put the small tensors they allocate: side by side in shared arrays, not
 * in an array each. A step over many small tensors then reads their elements nearly in the order
 * they lie in memory. With an array each, the collector scatters them over the heap (it moves
 * objects in the order it reaches them, hash tables included), and a step over 10^5 four-element
 * tensors waited for memory about ten times as long as it computed.
 *
 * <p>Elements are never handed out twice: a shared array is freed when the last tensor in it is
 * unreachable (or moved out of it by a step, {@link SmallTensorRuns}), so a released small
 * tensor's elements stay allocated until then. Not thread-safe: the engine calls it under its lock.
 */
final class SmallTensorArena {
    /** Tensors of 1 to this many elements are carved from shared arrays (at most one chunk, so one block of any block size). */
    static final int MAX_ELEMENTS = 1 << 12;
    /** Elements per shared array: 1 MiB of float32, at most 1.6% of it left unused when the next tensor does not fit. */
    static final int ARRAY_ELEMENTS = 1 << 18;

    private SharedFloats floats;
    private int floatsUsed;
    private short[] shorts;
    private int shortsUsed;

    /** Whether a tensor of {@code length} elements is carved from the shared arrays. */
    static boolean holds(long length) {
        return length > 0 && length <= MAX_ELEMENTS;
    }

    /** Where {@link #carveFloats} put a tensor's elements: from {@code offset} on in {@code in}. */
    record Carved(SharedFloats in, int offset) {}

    /** {@code length} zeroed float32 elements. */
    Carved carveFloats(int length) {
        requireHeld(length);
        if (floats == null || floatsUsed + length > floats.array.length) {
            floats = new SharedFloats(new float[ARRAY_ELEMENTS]);
            floatsUsed = 0;
        }
        Carved carved = new Carved(floats, floatsUsed);
        floatsUsed += length;
        return carved;
    }

    /** {@code length} zeroed 16-bit elements, as a view from the first. */
    ShortBuffer shorts(int length) {
        requireHeld(length);
        if (shorts == null || shortsUsed + length > shorts.length) {
            shorts = new short[ARRAY_ELEMENTS];
            shortsUsed = 0;
        }
        ShortBuffer view = ShortBuffer.wrap(shorts, shortsUsed, length).slice();
        shortsUsed += length;
        return view;
    }

    /** Forgets the current shared arrays (the engine is closed); their tensors keep them alive while they are. */
    void clear() {
        floats = null;
        shorts = null;
    }

    private static void requireHeld(int length) {
        if (!holds(length)) throw new IllegalArgumentException("a small tensor has 1 to " + MAX_ELEMENTS + " elements, got " + length);
    }
}
