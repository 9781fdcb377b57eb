package io.fusedopt.cpu;

/**
 * A small float32 tensor the backend allocated itself, its elements carved from a shared array
 * ({@link SmallTensorArena}), that a step program may move ({@link SmallTensorRuns}). No caller can
 * see where the elements lie: they reach them through the buffer's copies only, so moving them
 * changes nothing but speed. A caller's wrapped memory, a 16-bit tensor and a large tensor (an
 * array of its own) are never moved.
 */
interface CarvedFloats {
    /** The array the elements lie in, or null when this buffer is not such a tensor (it may not be moved). */
    float[] carvedArray();

    /** Where element 0 lies in {@link #carvedArray()}. */
    int carvedOffset();

    /**
     * Copies the elements to {@code target.array[offset, offset + length())} and keeps them there
     * from now on. Called by a step's preparation, under the engine's lock (the optimizer's lock is
     * held): a caller that reads or writes the buffer from another thread synchronizes with steps
     * already, which orders its copies with the move as with the step's updates.
     */
    void moveTo(SharedFloats target, int offset);
}
