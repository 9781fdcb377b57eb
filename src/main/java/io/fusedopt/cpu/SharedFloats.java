package io.fusedopt.cpu;

import java.nio.FloatBuffer;

/**
 * One float32 array that small tensors share: carved from it ({@link SmallTensorArena}) or moved
 * into it ({@link SmallTensorRuns}). It is the one block of each {@link BlockedHostBuffer} in it,
 * and the block tables are shared too (never modified, the view read and written at absolute
 * indices only), so that a tensor of four elements costs no arrays of its own: at 10^5 tensors
 * those made tens of megabytes that the collector kept copying.
 */
final class SharedFloats {
    final float[] array;
    /** {@code {array}}: the block table of every buffer in it. */
    final float[][] blocks;
    /** A view of the whole array, as {@link #blocks}' views. */
    final FloatBuffer[] blockViews;

    SharedFloats(float[] array) {
        this.array = array;
        blocks = new float[][] {array};
        blockViews = new FloatBuffer[] {FloatBuffer.wrap(array)};
    }
}
