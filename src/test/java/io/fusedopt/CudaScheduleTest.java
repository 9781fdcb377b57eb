package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Schedules, dynamic loss scaling and gradient-norm tracking on the device (the finalize kernel),
 * against the CPU reference bit for bit, stepped and replayed from a captured graph.
 */
@Tag("gpu")
class CudaScheduleTest {
    @TempDir
    Path dir;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    /**
     * A cosine-with-warmup schedule (and warm restarts in the other group) replayed from one
     * captured graph equals the same schedule stepped one call at a time, and the CPU reference,
     * bit for bit: the device evaluates the schedule from its own step counter.
     */
    @Test
    void aReplayedScheduleEqualsSteppedCallsAndTheReference() {
        Adam adam = Adam.adamW().optLearningRate(1e-2).build();
        LrSchedule first = LrSchedule.cosineWithWarmup(4, 16, 0.05);
        LrSchedule second = LrSchedule.warmRestarts(3, 2, 0.1);
        try (ScheduleRun replayed = new ScheduleRun(ScheduleRun.builder(Backend.CUDA, adam), adam, first, second, Set.of(6));
             ScheduleRun stepped = new ScheduleRun(ScheduleRun.builder(Backend.CUDA, adam), adam, first, second, Set.of(6));
             ScheduleRun reference = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam), adam, first, second, Set.of(6))) {
            replayed.steps(0, 20, true);
            stepped.steps(0, 20, false);
            reference.steps(0, 20, false);
            assertEquals(reference.log, stepped.log);
            assertEquals(reference.log, replayed.log);
            ScheduleRun.assertSameBits(reference.snapshot(), stepped.snapshot(), "CUDA stepped vs CPU");
            ScheduleRun.assertSameBits(reference.snapshot(), replayed.snapshot(), "CUDA replayed vs CPU");
        }
    }

    /** Growth and backoff factors that are not powers of two: the float32 scale times the double factor, rounded once. */
    @Test
    void theDeviceScalesByDoubleFactorsAsGradScalerDoes() {
        assertArrayEquals(DynamicLossScalingTest.NON_POWER_OF_TWO_SCALES,
                DynamicLossScalingTest.scalesWithNonPowerOfTwoFactors(Backend.CUDA));
    }

    /** GradScaler's rule on the device: the scripted sequence, inside a captured graph and step by step. */
    @Test
    void theDeviceScalerFollowsGradScalersRule() {
        Adam adam = Adam.builder().optLearningRate(1e-2).build();
        DeviceOptimizer.Builder b = ScheduleRun.builder(Backend.CUDA, adam).optDynamicLossScaling(DynamicLossScaling.builder()
                .optGrowthInterval(3).build());
        try (ScheduleRun replayed = new ScheduleRun(b, adam, LrSchedule.linearWarmup(5), null, DynamicLossScalingTest.OVERFLOWS);
             ScheduleRun stepped = new ScheduleRun(b, adam, LrSchedule.linearWarmup(5), null, DynamicLossScalingTest.OVERFLOWS);
             ScheduleRun reference = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(
                     DynamicLossScalingTest.scriptScaling()), adam, LrSchedule.linearWarmup(5), null, DynamicLossScalingTest.OVERFLOWS)) {
            int n = DynamicLossScalingTest.SCRIPT.length;
            replayed.steps(0, n, true);
            stepped.steps(0, n, false);
            reference.steps(0, n, false);
            DynamicLossScalingTest.assertFollowsScript(replayed.opt, replayed.log);
            DynamicLossScalingTest.assertFollowsScript(stepped.opt, stepped.log);
            assertEquals(reference.log, replayed.log);
            ScheduleRun.assertSameBits(reference.snapshot(), replayed.snapshot(), "CUDA replayed vs CPU");
            ScheduleRun.assertSameBits(reference.snapshot(), stepped.snapshot(), "CUDA stepped vs CPU");
        }
    }

    /** Saved on CUDA mid-schedule and mid-scaler, resumed on the CPU and on CUDA: bit for bit with the uninterrupted run. */
    @Test
    void aCheckpointResumesAcrossBackends() throws Exception {
        Adam adam = Adam.builder().optLearningRate(1e-2).build();
        LrSchedule first = LrSchedule.oneCycle(20, 0.3, 25, 1e4);
        LrSchedule second = LrSchedule.sequence(List.of(LrSchedule.constant(0.5), LrSchedule.exponential(0.9)), 5);
        Path file = dir.resolve("cuda.safetensors");
        int n = DynamicLossScalingTest.SCRIPT.length;
        try (ScheduleRun whole = new ScheduleRun(ScheduleRun.builder(Backend.CUDA, adam).optDynamicLossScaling(
                DynamicLossScalingTest.scriptScaling()), adam, first, second, DynamicLossScalingTest.OVERFLOWS)) {
            whole.steps(0, 7, true);
            whole.save(file);
            whole.steps(7, n, true);
            for (Backend loadOn : List.of(Backend.CPU, Backend.CUDA)) {
                try (ScheduleRun resumed = new ScheduleRun(ScheduleRun.builder(loadOn, adam).optDynamicLossScaling(
                        DynamicLossScalingTest.scriptScaling()), adam, null, null, DynamicLossScalingTest.OVERFLOWS)) {
                    resumed.load(file);
                    resumed.steps(7, n, loadOn == Backend.CUDA);
                    assertEquals(whole.log.subList(7, n), resumed.log, "resumed on " + loadOn);
                    ScheduleRun.assertSameBits(whole.snapshot(), resumed.snapshot(), "resumed on " + loadOn);
                }
            }
        }
    }

    /** optTrackGradNorm on the device: the same norm as the CPU, no clipping, nothing skipped. */
    @Test
    void theTrackedNormEqualsTheCpus() {
        Sgd sgd = Sgd.builder().optLearningRate(0.1).build();
        try (ScheduleRun cuda = new ScheduleRun(DeviceOptimizer.builder(sgd).optBackend(Backend.CUDA).optTrackGradNorm(true), sgd,
                null, null, Set.of(2));
             ScheduleRun cpu = new ScheduleRun(DeviceOptimizer.builder(sgd).optBackend(Backend.CPU).optTrackGradNorm(true), sgd,
                     null, null, Set.of(2))) {
            cuda.steps(0, 4, true);
            cpu.steps(0, 4, false);
            assertEquals(cpu.log, cuda.log);
            assertEquals(4, cuda.opt.stepCount(), "an infinite gradient is applied: tracking is not a policy");
            ScheduleRun.assertSameBits(cpu.snapshot(), cuda.snapshot(), "CUDA vs CPU");
        }
    }

    /**
     * ScheduleClock.ITERATIONS on the device: the finalize kernel counts the skipped steps into the
     * scheduler step, stepped and replayed, bit for bit with the CPU reference; the applied-steps
     * clock gives other rates once a step is skipped.
     */
    @Test
    void theIterationsClockCountsSkippedStepsOnTheDeviceAsOnTheCpu() {
        Adam adam = Adam.adamW().optLearningRate(1e-2).build();
        LrSchedule first = LrSchedule.cosineWithWarmup(4, 16, 0.05);
        LrSchedule second = LrSchedule.linearDecay(10, 0.1);
        Set<Integer> overflows = Set.of(2, 3, 7);
        java.util.function.Function<Backend, DeviceOptimizer.Builder> iterations =
                backend -> ScheduleRun.builder(backend, adam).optScheduleClock(ScheduleClock.ITERATIONS);
        try (ScheduleRun replayed = new ScheduleRun(iterations.apply(Backend.CUDA), adam, first, second, overflows);
             ScheduleRun stepped = new ScheduleRun(iterations.apply(Backend.CUDA), adam, first, second, overflows);
             ScheduleRun reference = new ScheduleRun(iterations.apply(Backend.CPU), adam, first, second, overflows);
             ScheduleRun applied = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam), adam, first, second, overflows)) {
            replayed.steps(0, 14, true);
            stepped.steps(0, 14, false);
            reference.steps(0, 14, false);
            applied.steps(0, 14, false);
            assertEquals(reference.log, stepped.log);
            assertEquals(reference.log, replayed.log);
            ScheduleRun.assertSameBits(reference.snapshot(), stepped.snapshot(), "CUDA stepped vs CPU");
            ScheduleRun.assertSameBits(reference.snapshot(), replayed.snapshot(), "CUDA replayed vs CPU");
            org.junit.jupiter.api.Assertions.assertNotEquals(applied.log, reference.log, "the clocks differ after a skipped step");
        }
    }

    /**
     * The device address of the dynamic loss scale holds the scale lossScaleState() reads, after
     * every step (overflows and growths included), and stays the same when the step program is
     * rebuilt (a tensor frozen).
     */
    @Test
    void theLossScalesDeviceAddressFollowsTheScaler() {
        Adam adam = Adam.builder().optLearningRate(1e-2).build();
        DeviceOptimizer.Builder b = ScheduleRun.builder(Backend.CUDA, adam).optDynamicLossScaling(DynamicLossScalingTest.scriptScaling());
        try (DeviceOptimizer empty = b.build()) {
            IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, empty::lossScaleDevicePointer);
            org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("no tensor is registered"), e.getMessage());
        }
        try (ScheduleRun run = new ScheduleRun(b, adam, null, null, DynamicLossScalingTest.OVERFLOWS)) {
            long address = run.opt.lossScaleDevicePointer();
            // Read as a caller's kernel would see it: the float32 at that device address, after the queued work.
            TensorBuffer scale = run.opt.wrapDevicePointer(address, 1);
            assertEquals(run.opt.lossScaleState().scale(), scale.toArray()[0], "before the first step: the initial scale");
            java.util.Set<Float> seen = new java.util.HashSet<>();
            int n = DynamicLossScalingTest.SCRIPT.length;
            for (int t = 0; t < n; t++) {
                run.steps(t, t + 1, false);
                seen.add(scale.toArray()[0]);
                assertEquals(run.opt.lossScaleState().scale(), scale.toArray()[0], "after step " + t);
            }
            org.junit.jupiter.api.Assertions.assertTrue(seen.size() >= 3, "the scale grew and backed off: " + seen);
            run.params.get(0).freeze(); // the next step builds a new step program
            run.steps(n, n + 2, false);
            assertEquals(address, run.opt.lossScaleDevicePointer(), "the address outlives a rebuilt program");
            assertEquals(run.opt.lossScaleState().scale(), scale.toArray()[0]);
        }
    }
}
