package io.fusedopt.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The table the finalize computation reads, one ENTRY per cohort of a group's tensors that share a
 * step offset: the group's hyper-parameters, step-independent flags and learning-rate schedule
 * (written by the host when a group's configuration changes), the entry's step offset, and the
 * per-step scalars and flags the finalize computation derives from them. A tensor's own step is
 * the applied-step counter minus its entry's offset (PyTorch's per-parameter step): tensors
 * registered before the first step share offset 0, a tensor added or unfrozen later gets its own
 * entry, and every entry still runs in the same update launch of its kernel kind. Flat arrays with
 * the device tables' strides, so the CUDA backend uploads them as they are.
 */
public final class GroupTable {
    private final UpdateKernel[] kernels;
    private final float[] hyper;
    private final int[] staticFlags;
    private final float[] scalars;
    private final int[] flags;
    /** Each group's schedule, or null (the hyper-parameter's learning rate at every step). */
    private final LrSegments[] schedules;
    /** Each entry's step offset: its tensors' own step is the applied-step counter minus it. */
    private final long[] offsets;

    /** Ints per entry in {@link #groupInfo()} (FO_GROUP_INFO_STRIDE). */
    public static final int INFO_STRIDE = 6;
    /** Where {@link #groupInfo()} holds an entry's offset, low and high word (FO_INFO_OFFSET_LO, FO_INFO_OFFSET_HI). */
    public static final int INFO_OFFSET_LO = 4, INFO_OFFSET_HI = 5;
    /**
     * Where {@link #groupInfo()} holds whether the entry's schedule also counts skipped steps
     * (FO_INFO_SCHEDULE_CLOCK): 1 with the iterations clock, 0 with the applied-steps clock.
     */
    public static final int INFO_SCHEDULE_CLOCK = 3;
    /** Schedules count every step taken, skipped ones included (ScheduleClock.ITERATIONS), not only applied ones. */
    private boolean schedulesCountSkippedSteps;

    public GroupTable(int count) {
        kernels = new UpdateKernel[count];
        hyper = new float[count * StepScalars.HYPER_STRIDE];
        staticFlags = new int[count];
        scalars = new float[count * StepScalars.SCALAR_STRIDE];
        flags = new int[count];
        schedules = new LrSegments[count];
        offsets = new long[count];
    }

    public int count() {
        return kernels.length;
    }

    /**
     * Sets entry {@code g}'s kernel, hyper-parameters ({@link StepScalars#hyperParameters}), flags and
     * schedule (null: none), with step offset 0.
     */
    public void set(int g, UpdateKernel kernel, float[] groupHyper, int groupStaticFlags, LrSegments schedule) {
        set(g, kernel, groupHyper, groupStaticFlags, schedule, 0);
    }

    /**
     * Sets entry {@code g}: its group's kernel, hyper-parameters ({@link StepScalars#hyperParameters}),
     * flags and schedule (null: none), and the entry's step offset (>= 0).
     */
    public void set(int g, UpdateKernel kernel, float[] groupHyper, int groupStaticFlags, LrSegments schedule, long offset) {
        if (offset < 0) throw new IllegalArgumentException("a step offset is >= 0, got " + offset);
        if (groupHyper.length != StepScalars.HYPER_STRIDE) {
            throw new IllegalArgumentException("hyper-parameters must hold " + StepScalars.HYPER_STRIDE + " floats");
        }
        kernels[g] = kernel;
        System.arraycopy(groupHyper, 0, hyper, g * StepScalars.HYPER_STRIDE, StepScalars.HYPER_STRIDE);
        staticFlags[g] = groupStaticFlags;
        schedules[g] = schedule;
        offsets[g] = offset;
    }

    public UpdateKernel kernel(int g) { return kernels[g]; }
    public int staticFlags(int g) { return staticFlags[g]; }
    public float[] hyper() { return hyper; }
    public float[] scalars() { return scalars; }
    public int[] flags() { return flags; }

    public LrSegments schedule(int g) { return schedules[g]; }
    public long offset(int g) { return offsets[g]; }

    /** Whether schedules count skipped steps too (ScheduleClock.ITERATIONS); set before the table is uploaded. */
    public void setSchedulesCountSkippedSteps(boolean countSkipped) {
        schedulesCountSkippedSteps = countSkipped;
    }

    /**
     * The scheduler step of the step whose applied-step counter is {@code step} (1, 2, ...) after
     * {@code skippedSteps} skipped steps: the steps applied before it, plus the skipped ones when
     * schedules count them (fo_scheduler_step).
     */
    public long schedulerStep(long step, long skippedSteps) {
        return step - 1 + (schedulesCountSkippedSteps ? skippedSteps : 0);
    }

    /**
     * The learning rate group {@code g} uses at scheduler step {@code n} (the step with counter
     * n + 1): fo_scheduled_lr.
     */
    public float learningRate(int g, long n) {
        return LrSegments.scheduledLr(hyper[g * StepScalars.HYPER_STRIDE + StepScalars.H_LR], schedules[g], n);
    }

    /**
     * {kernel code, static flags, schedule segments, schedule clock, offset low word, offset high
     * word} per entry: the layout fusedopt_finalize_step reads.
     */
    public int[] groupInfo() {
        int[] out = new int[INFO_STRIDE * count()];
        for (int g = 0; g < count(); g++) {
            out[INFO_STRIDE * g] = kernels[g].code();
            out[INFO_STRIDE * g + 1] = staticFlags[g];
            out[INFO_STRIDE * g + 2] = schedules[g] == null ? 0 : schedules[g].size();
            out[INFO_STRIDE * g + INFO_SCHEDULE_CLOCK] = schedulesCountSkippedSteps ? 1 : 0;
            out[INFO_STRIDE * g + INFO_OFFSET_LO] = (int) offsets[g];
            out[INFO_STRIDE * g + INFO_OFFSET_HI] = (int) (offsets[g] >>> 32);
        }
        return out;
    }

    /** Every group's schedule as FoSegment structs, {@link LrSegments#MAX_SEGMENTS} reserved per group. */
    public byte[] segmentTable() {
        int perGroup = LrSegments.MAX_SEGMENTS * LrSegments.SEGMENT_BYTES;
        ByteBuffer b = ByteBuffer.allocate(Math.max(1, count()) * perGroup).order(ByteOrder.LITTLE_ENDIAN);
        for (int g = 0; g < count(); g++) if (schedules[g] != null) schedules[g].encode(b, g * perGroup);
        return b.array();
    }

    @Override
    public String toString() {
        return "GroupTable" + Arrays.toString(kernels) + " offsets " + Arrays.toString(offsets);
    }
}
