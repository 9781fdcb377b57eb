package io.fusedopt.internal;

import java.util.Arrays;

/**
 * Every group's hyper-parameters and step-independent flags (written by the host when a group's
 * configuration changes), and the per-step scalars and flags the finalize computation derives
 * from them. Flat arrays with the device tables' strides, so the CUDA backend uploads them as they are.
 */
public final class GroupTable {
    private final UpdateKernel[] kernels;
    private final float[] hyper;
    private final int[] staticFlags;
    private final float[] scalars;
    private final int[] flags;

    public GroupTable(int count) {
        kernels = new UpdateKernel[count];
        hyper = new float[count * StepScalars.HYPER_STRIDE];
        staticFlags = new int[count];
        scalars = new float[count * StepScalars.SCALAR_STRIDE];
        flags = new int[count];
    }

    public int count() {
        return kernels.length;
    }

    /** Sets group {@code g}'s kernel, hyper-parameters ({@link StepScalars#hyperParameters}) and flags. */
    public void set(int g, UpdateKernel kernel, float[] groupHyper, int groupStaticFlags) {
        if (groupHyper.length != StepScalars.HYPER_STRIDE) {
            throw new IllegalArgumentException("hyper-parameters must hold " + StepScalars.HYPER_STRIDE + " floats");
        }
        kernels[g] = kernel;
        System.arraycopy(groupHyper, 0, hyper, g * StepScalars.HYPER_STRIDE, StepScalars.HYPER_STRIDE);
        staticFlags[g] = groupStaticFlags;
    }

    public UpdateKernel kernel(int g) { return kernels[g]; }
    public int staticFlags(int g) { return staticFlags[g]; }
    public float[] hyper() { return hyper; }
    public float[] scalars() { return scalars; }
    public int[] flags() { return flags; }

    /** {kernel code, static flags} per group: the layout fusedopt_finalize_step reads. */
    public int[] kernelsAndFlags() {
        int[] out = new int[2 * count()];
        for (int g = 0; g < count(); g++) {
            out[2 * g] = kernels[g].code();
            out[2 * g + 1] = staticFlags[g];
        }
        return out;
    }

    @Override
    public String toString() {
        return "GroupTable" + Arrays.toString(kernels);
    }
}
