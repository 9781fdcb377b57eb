package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * What a schedule counts ({@link ScheduleClock}): applied steps (the default), or every step taken,
 * skipped ones included, as PyTorch's usual loop calls {@code scheduler.step()} every iteration.
 * SGD with a gradient of 1 makes each step's learning rate visible in the param: p - lr.
 */
class ScheduleClockTest {
    private static final double LR = 0.5;
    private static final LrSchedule DECAY = LrSchedule.linear(1.0, 0.0, 4);
    /** The iterations whose gradient overflows (their step is skipped). */
    private static final Set<Integer> OVERFLOWS = Set.of(1, 2);
    private static final int N = 16;

    /** An SGD optimizer over one tensor of zeros, with {@link #DECAY} on its group, skipping non-finite steps. */
    private static DeviceOptimizer sgd(Backend backend, ScheduleClock clock) {
        DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().optLearningRate(LR).build()).optBackend(backend)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).optScheduleClock(clock).build();
        ParamGroup group = opt.addGroup();
        group.setSchedule(DECAY);
        group.add("w", opt.allocate(N), opt.allocate(N));
        return opt;
    }

    /** Iterations [from, to): a gradient of 1 (infinite in one element on an overflow), one step each; the rate each used. */
    private static List<Float> iterate(DeviceOptimizer opt, int from, int to) {
        Parameter w = opt.parameter("w").orElseThrow();
        List<Float> rates = new ArrayList<>();
        for (int i = from; i < to; i++) {
            float[] g = new float[N];
            Arrays.fill(g, 1f);
            if (OVERFLOWS.contains(i)) g[3] = Float.POSITIVE_INFINITY;
            w.grad().copyFrom(g);
            float announced = opt.lastLearningRates()[0];
            assertEquals(announced, w.group().learningRate(), "the group's rate is lastLearningRates' entry");
            float before = w.param().toArray()[0];
            opt.step();
            float after = w.param().toArray()[0];
            if (opt.lastStep().skipped()) {
                assertEquals(before, after, "a skipped step updates nothing");
                rates.add(Float.NaN);
            } else {
                assertEquals(before - announced, after, "the step used the announced rate, at iteration " + i);
                rates.add(announced);
            }
        }
        return rates;
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void theIterationsClockCountsSkippedStepsAsPyTorchsLoopDoes(Backend backend) {
        try (DeviceOptimizer opt = sgd(backend, ScheduleClock.ITERATIONS)) {
            assertEquals(ScheduleClock.ITERATIONS, opt.scheduleClock());
            List<Float> rates = iterate(opt, 0, 6);
            // scheduler.step() every iteration: iteration i uses the factor at i, skipped or not.
            List<Float> expected = new ArrayList<>();
            for (int i = 0; i < 6; i++) expected.add(OVERFLOWS.contains(i) ? Float.NaN : DECAY.learningRateAt(LR, i));
            assertEquals(expected, rates);
            assertEquals(4, opt.stepCount(), "applied steps");
            assertEquals(2, opt.lastStep().skippedSteps());
            assertEquals(DECAY.learningRateAt(LR, 6), opt.lastLearningRates()[0], "the next iteration's rate");
        }
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void theDefaultClockCountsAppliedStepsOnly(Backend backend) {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().optLearningRate(LR).build()).optBackend(backend).build()) {
            assertEquals(ScheduleClock.APPLIED_STEPS, opt.scheduleClock());
        }
        try (DeviceOptimizer opt = sgd(backend, ScheduleClock.APPLIED_STEPS)) {
            List<Float> rates = iterate(opt, 0, 6);
            List<Float> expected = new ArrayList<>();
            int applied = 0;
            for (int i = 0; i < 6; i++) expected.add(OVERFLOWS.contains(i) ? Float.NaN : DECAY.learningRateAt(LR, applied++));
            assertEquals(expected, rates);
            assertNotEquals(DECAY.learningRateAt(LR, 3), DECAY.learningRateAt(LR, 5), "the two clocks give other rates here");
        }
    }

    /** The clock's counter (applied and skipped steps) travels in the checkpoint: a resumed run continues bit for bit. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aCheckpointResumesTheIterationsClock(Backend backend) throws Exception {
        try (DeviceOptimizer whole = sgd(backend, ScheduleClock.ITERATIONS);
             DeviceOptimizer resumed = sgd(backend, ScheduleClock.ITERATIONS)) {
            iterate(whole, 0, 3);
            byte[] checkpoint = whole.saveToBytes();
            List<Float> rest = iterate(whole, 3, 6);
            resumed.load(checkpoint);
            assertEquals(whole.lastStep().skippedSteps(), resumed.lastStep().skippedSteps());
            assertEquals(rest, iterate(resumed, 3, 6));
            assertArrayEquals(whole.parameter("w").orElseThrow().param().toArray(), resumed.parameter("w").orElseThrow().param().toArray());
        }
    }

    /** A checkpoint loads only into an optimizer with its clock: the other would resume every schedule at another step. */
    @Test
    void aCheckpointOfTheOtherClockIsRefusedAndChangesNothing() throws Exception {
        try (DeviceOptimizer iterations = sgd(Backend.CPU, ScheduleClock.ITERATIONS);
             DeviceOptimizer applied = sgd(Backend.CPU, ScheduleClock.APPLIED_STEPS)) {
            iterate(iterations, 0, 3);
            iterate(applied, 0, 4);
            byte[] fromIterations = iterations.saveToBytes();
            byte[] fromApplied = applied.saveToBytes();
            float[] before = applied.parameter("w").orElseThrow().param().toArray();
            CheckpointException e = assertThrows(CheckpointException.class, () -> applied.load(fromIterations));
            assertTrue(e.getMessage().contains("schedule_clock is ITERATIONS in the checkpoint, APPLIED_STEPS in this optimizer"),
                    e.getMessage());
            assertTrue(e.getMessage().contains("optScheduleClock(ScheduleClock.ITERATIONS)"), e.getMessage());
            assertArrayEquals(before, applied.parameter("w").orElseThrow().param().toArray());
            assertEquals(2, applied.stepCount());
            CheckpointException other = assertThrows(CheckpointException.class, () -> iterations.load(fromApplied));
            assertTrue(other.getMessage().contains("schedule_clock is APPLIED_STEPS in the checkpoint, ITERATIONS in this optimizer"),
                    other.getMessage());
            assertTrue(!new String(fromApplied, java.nio.charset.StandardCharsets.ISO_8859_1).contains("schedule_clock"),
                    "the default clock writes nothing: a checkpoint keeps the bytes of earlier versions");
        }
    }

    @Test
    void aNullClockIsRefusedNamingIt() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DeviceOptimizer.builder(Sgd.builder().build()).optScheduleClock(null));
        assertTrue(e.getMessage().contains("schedule clock"), e.getMessage());
    }
}
