package io.fusedopt.cpu;

import io.fusedopt.Backend;
import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.GroupTable;
import io.fusedopt.internal.KernelBatch;
import io.fusedopt.internal.NewtonSchulz;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepProgram;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.util.Arrays;
import java.util.List;

/**
 * The CPU backend: host memory (a Java array per tensor, small tensors side by side in shared
 * arrays: {@link SmallTensorArena}) and {@link ReferenceKernels}, run chunk by chunk over the same
 * {@link SegmentTable} the CUDA backend uploads. Updates run on the calling thread.
 */
public final class CpuEngine extends HostEngine {
    /** The largest Java array the JVM reliably allocates. */
    static final int MAX_LENGTH = Integer.MAX_VALUE - 8;

    /** How the Newton-Schulz products of matrix kernels (Muon) are computed. */
    private final NewtonSchulz.Products matrixProducts;

    /** The reference backend. */
    public CpuEngine() {
        this(NewtonSchulz.REFERENCE);
    }

    /**
     * The reference backend with other Newton-Schulz products: a test's model of another backend's
     * (the CUDA fast mode's bf16-input products on the emulator's cuBLAS double). Everything else is
     * the reference's.
     */
    public CpuEngine(NewtonSchulz.Products matrixProducts) {
        this.matrixProducts = matrixProducts;
    }

    @Override
    public Backend backend() {
        return Backend.CPU;
    }

    @Override
    public String description() {
        return "CPU reference (" + Runtime.getRuntime().availableProcessors() + " cores available, 1 used)";
    }

    @Override
    public synchronized AbstractTensorBuffer allocate(long length, Precision precision, float initialValue) {
        ensureOpen();
        if (length < 0 || length > MAX_LENGTH) {
            throw new IllegalArgumentException("the CPU reference backend holds 0 to " + MAX_LENGTH
                    + " elements per tensor (one Java array), got " + length);
        }
        requireHeapFor(length, precision, "CPU reference");
        int n = (int) length;
        boolean small = SmallTensorArena.holds(length);
        HostBuffer buffer;
        if (precision == Precision.FP32) {
            float[] array;
            int base;
            if (small) { // beside other small tensors, in an array they share
                SmallTensorArena.Carved carved = smallTensors.carveFloats(n);
                array = carved.in().array;
                base = carved.offset();
                buffer = new HostBuffer(this, carved.in().blockViews[0], base, n, true);
            } else {
                array = new float[n];
                base = 0;
                buffer = new HostBuffer(this, FloatBuffer.wrap(array), true);
            }
            if (initialValue != 0f) Arrays.fill(array, base, base + n, initialValue);
        } else {
            ShortBuffer data = small ? smallTensors.shorts(n) : ShortBuffer.wrap(new short[n]);
            buffer = new HostBuffer(this, data, precision, true);
            if (initialValue != 0f) {
                for (int i = 0; i < n; i++) buffer.set(i, initialValue);
            }
        }
        return own(buffer);
    }

    @Override
    public synchronized AbstractTensorBuffer wrapHost(FloatBuffer buffer) {
        ensureOpen();
        checkWrappable(buffer);
        return new HostBuffer(this, buffer.slice(), false);
    }

    @Override
    public StepProgram prepare(List<KernelBatch> batches, GroupTable groups) {
        ensureOpen();
        return new CpuStepProgram(batches, groups, b -> host(b, HostBuffer.class), matrixProducts);
    }
}
