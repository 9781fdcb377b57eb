package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Safetensors;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Dynamic loss scaling (GradScaler's rule) and gradient-norm tracking on the CPU backends, and
 * checkpoints holding schedules and the scaler. CudaScheduleTest runs the same scripts on the device.
 */
class DynamicLossScalingTest {
    @TempDir
    Path dir;

    /** Steps whose backward pass overflows in {@link #SCRIPT}. */
    static final Set<Integer> OVERFLOWS = Set.of(4, 7, 8);

    /**
     * GradScaler's documented rule with growth_interval 3 (init_scale 2^16, growth 2, backoff 0.5),
     * worked by hand for overflows at steps 4, 7 and 8: after each step, {scale, growth tracker,
     * growths, backoffs, skipped (1) or applied (0)}.
     */
    static final long[][] SCRIPT = {
        {65536, 1, 0, 0, 0},
        {65536, 2, 0, 0, 0},
        {131072, 0, 1, 0, 0},  // third clean step in a row: grow
        {131072, 1, 1, 0, 0},
        {65536, 0, 1, 1, 1},   // overflow: skip, back off, reset the tracker
        {65536, 1, 1, 1, 0},
        {65536, 2, 1, 1, 0},
        {32768, 0, 1, 2, 1},   // overflow one short of a growth
        {16384, 0, 1, 3, 1},   // and again
        {16384, 1, 1, 3, 0},
        {16384, 2, 1, 3, 0},
        {32768, 0, 2, 3, 0},
        {32768, 1, 2, 3, 0},
        {32768, 2, 2, 3, 0},
    };

    static DynamicLossScaling scriptScaling() {
        return DynamicLossScaling.builder().optGrowthInterval(3).build();
    }

    /** Checks a run's log (from ScheduleRun) against {@link #SCRIPT}. */
    static void assertFollowsScript(DeviceOptimizer opt, List<String> log) {
        long applied = 0, skipped = 0;
        for (int t = 0; t < SCRIPT.length; t++) {
            long[] row = SCRIPT[t];
            if (row[4] == 1) skipped++;
            else applied++;
            String expected = new LossScaleState(row[0], (int) row[1], row[2], row[3]).toString();
            assertTrue(log.get(t).endsWith(expected), "step " + t + ": " + log.get(t) + " should end with " + expected);
            assertTrue(log.get(t).contains("step=" + applied + ", skippedSteps=" + skipped + ", skipped=" + (row[4] == 1)),
                    "step " + t + ": " + log.get(t));
        }
        assertEquals(applied, opt.stepCount());
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void theScaleGrowsBacksOffAndSkipsWhereGradScalerWould(Backend backend) {
        Adam adam = Adam.builder().optLearningRate(1e-2).build();
        try (ScheduleRun scaled = new ScheduleRun(ScheduleRun.builder(backend, adam).optDynamicLossScaling(scriptScaling()), adam,
                null, null, OVERFLOWS);
             ScheduleRun unscaled = new ScheduleRun(ScheduleRun.builder(backend, adam), adam, null, null, OVERFLOWS)) {
            assertEquals(new LossScaleState(65536, 0, 0, 0), scaled.opt.lossScaleState());
            scaled.steps(0, SCRIPT.length, false);
            assertFollowsScript(scaled.opt, scaled.log);
            assertEquals(32768.0, scaled.opt.gradScale());
            // Powers of two scale and unscale exactly: the same updates as gradients never scaled.
            unscaled.steps(0, SCRIPT.length, false);
            ScheduleRun.assertSameBits(unscaled.snapshot(), scaled.snapshot(), "scaled vs unscaled");
        }
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void factorsThatAreNotPowersOfTwoScaleAsGradScalerDoes(Backend backend) {
        assertArrayEquals(NON_POWER_OF_TWO_SCALES, scalesWithNonPowerOfTwoFactors(backend));
    }

    /**
     * GradScaler multiplies the float32 scale by the double factor and rounds once: from 300, with
     * growth 1.2 at every clean step and backoff 0.3, the scale grows to 360 and 432, backs off to
     * 129.6 and grows to 155.52, each the float32 nearest the decimal product. Factors rounded to
     * float32 first give 432.00003 and 129.60002 (and a backoff from 360 gives 108.0000076, not 108).
     */
    static final float[] NON_POWER_OF_TWO_SCALES = {360f, 432f, 129.6f, 155.52f};

    /** The scale after each of four steps whose third gradient overflows (see {@link #NON_POWER_OF_TWO_SCALES}). */
    static float[] scalesWithNonPowerOfTwoFactors(Backend backend) {
        DynamicLossScaling scaling = DynamicLossScaling.builder().optInitialScale(300).optGrowthFactor(1.2).optBackoffFactor(0.3)
                .optGrowthInterval(1).build();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().build()).optBackend(backend)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).optDynamicLossScaling(scaling).build()) {
            TensorBuffer grad = opt.allocate(2);
            opt.addGroup().add("w", opt.allocate(2), grad);
            float[] scales = new float[4];
            for (int t = 0; t < scales.length; t++) {
                grad.copyFrom(new float[] {1f, t == 2 ? Float.POSITIVE_INFINITY : 1f});
                opt.step();
                scales[t] = opt.lossScaleState().scale();
            }
            return scales;
        }
    }

    @Test
    void replayedStepsFollowTheScriptToo() {
        Adam adam = Adam.builder().build();
        try (ScheduleRun replayed = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(scriptScaling()), adam,
                LrSchedule.cosineWithWarmup(3, 12, 0.0), null, OVERFLOWS)) {
            replayed.steps(0, SCRIPT.length, true);
            assertFollowsScript(replayed.opt, replayed.log);
        }
    }

    /** A growth that would overflow float32 is not taken (GradScaler keeps the scale when the product is infinite). */
    @Test
    void aGrowthToInfinityKeepsTheScale() {
        float top = 0x1p127f;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().build()).optBackend(Backend.CPU)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP)
                .optDynamicLossScaling(DynamicLossScaling.builder().optInitialScale(top).optGrowthInterval(1).build()).build()) {
            opt.addGroup().add("w", opt.allocate(4), opt.allocate(4)); // a zero gradient stays finite at any scale
            opt.step();
            assertEquals(new LossScaleState(top, 0, 0, 0), opt.lossScaleState());
            assertEquals(1, opt.stepCount());
        }
    }

    @Test
    void badScalingIsRefusedWithItsReason() {
        Sgd sgd = Sgd.builder().build();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DeviceOptimizer.builder(sgd)
                .optBackend(Backend.CPU).optDynamicLossScaling(DynamicLossScaling.gradScalerDefaults()).build());
        assertTrue(e.getMessage().contains("needs optNonFinitePolicy(NonFinitePolicy.SKIP_STEP), not PROPAGATE"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DeviceOptimizer.builder(sgd).optBackend(Backend.CPU)
                .optNonFinitePolicy(NonFinitePolicy.THROW).optDynamicLossScaling(DynamicLossScaling.gradScalerDefaults()).build());
        assertTrue(e.getMessage().contains("not THROW"), e.getMessage());
        refused(() -> DynamicLossScaling.builder().optGrowthFactor(1).build(), "growthFactor must be > 1");
        refused(() -> DynamicLossScaling.builder().optBackoffFactor(1).build(), "backoffFactor must be in (0, 1), got 1.0");
        refused(() -> DynamicLossScaling.builder().optBackoffFactor(0).build(), "backoffFactor must be in (0, 1)");
        refused(() -> DynamicLossScaling.builder().optGrowthInterval(0).build(), "growthInterval must be >= 1, got 0");
        refused(() -> DynamicLossScaling.builder().optInitialScale(0).build(), "initialScale must be > 0");
        refused(() -> DynamicLossScaling.builder().optInitialScale(Double.NaN).build(), "initialScale must be a finite float32");
        refused(() -> DynamicLossScaling.builder().optInitialScale(1e39).build(), "initialScale must be a finite float32");
        refused(() -> DynamicLossScaling.builder().optInitialScale(1e-50).build(), "rounds to 0.0 in float32");

        try (DeviceOptimizer opt = DeviceOptimizer.builder(sgd).optBackend(Backend.CPU).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP)
                .optDynamicLossScaling(DynamicLossScaling.gradScalerDefaults()).build()) {
            IllegalStateException s = assertThrows(IllegalStateException.class, () -> opt.setGradScale(1024));
            assertTrue(s.getMessage().contains("dynamic loss scaling sets the scale on the device"), s.getMessage());
            assertEquals(65536.0, opt.gradScale(), "unchanged");
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, sgd)) {
            IllegalStateException s = assertThrows(IllegalStateException.class, opt::lossScaleState);
            assertTrue(s.getMessage().contains("dynamic loss scaling is off"), s.getMessage());
        }
    }

    private static void refused(Runnable call, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(message), "'" + e.getMessage() + "' should say '" + message + "'");
    }

    /** optTrackGradNorm: the norm of every step, with no clipping and no policy (a NaN is applied, as PROPAGATE does). */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void theGradientNormIsReadableWhenTracked(Backend backend) {
        Sgd sgd = Sgd.builder().optLearningRate(0.5).build();
        try (DeviceOptimizer tracked = DeviceOptimizer.builder(sgd).optBackend(backend).optTrackGradNorm(true).build();
             DeviceOptimizer untracked = DeviceOptimizer.create(backend, sgd)) {
            assertTrue(tracked.tracksGradNorm());
            assertFalse(untracked.tracksGradNorm());
            TensorBuffer p = tracked.allocate(3), g = tracked.allocate(3);
            tracked.addGroup().add("w", p, g);
            TensorBuffer p2 = untracked.allocate(3), g2 = untracked.allocate(3);
            untracked.addGroup().add("w", p2, g2);
            g.copyFrom(new float[] {30f, 0f, 40f});
            g2.copyFrom(new float[] {30f, 0f, 40f});
            tracked.step();
            untracked.step();
            StepReport r = tracked.lastStep();
            assertEquals(50f, r.gradNorm());
            assertEquals(1f, r.clipCoefficient(), "no clipping");
            assertArrayEquals(new float[] {-15f, 0f, -20f}, p.toArray(), "the full gradient was applied");
            assertTrue(Float.isNaN(untracked.lastStep().gradNorm()), "not tracked: no norm");
            float[] odd = {1e-3f, 7f, -2.5f};
            g.copyFrom(odd);
            tracked.step();
            double sum = 0;
            for (float v : odd) sum += (double) v * v;
            assertEquals((float) Math.sqrt(sum), tracked.lastStep().gradNorm());
            g.copyFrom(new float[] {Float.NaN, 0f, 0f});
            tracked.step();
            assertTrue(Float.isNaN(tracked.lastStep().gradNorm()));
            assertFalse(tracked.lastStep().skipped(), "tracking is not a policy: the step is applied");
            assertEquals(3, tracked.stepCount());
        }
    }

    /** Save mid-schedule and mid-scaler (after a backoff, tracker at 2), resume on either CPU backend: bit for bit. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aCheckpointResumesMidScalerAndMidSchedule(Backend loadOn) throws IOException {
        Adam adam = Adam.adamW().optLearningRate(1e-2).build();
        LrSchedule first = LrSchedule.cosineWithWarmup(3, 12, 0.1);
        LrSchedule second = LrSchedule.polynomial(10, 2, 0.05);
        Path file = dir.resolve("scaler.safetensors");
        try (ScheduleRun whole = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(scriptScaling()), adam,
                first, second, OVERFLOWS)) {
            whole.steps(0, 7, false);
            whole.save(file);
            LossScaleState saved = whole.opt.lossScaleState();
            whole.steps(7, SCRIPT.length, false);
            assertFollowsScript(whole.opt, whole.log);
            try (ScheduleRun resumed = new ScheduleRun(ScheduleRun.builder(loadOn, adam).optDynamicLossScaling(scriptScaling()), adam,
                    null, null, OVERFLOWS)) {
                resumed.load(file);
                assertEquals(saved, resumed.opt.lossScaleState());
                assertEquals(new LossScaleState(65536, 2, 1, 1), saved);
                resumed.steps(7, SCRIPT.length, false);
                assertEquals(whole.log.subList(7, SCRIPT.length), resumed.log);
                ScheduleRun.assertSameBits(whole.snapshot(), resumed.snapshot(), "resumed on " + loadOn);
            }
        }
    }

    /** Checkpoints whose schedule or scaler does not fit are refused, naming why, and change nothing. */
    @Test
    void mismatchedOrDamagedScheduleAndScalerEntriesAreRefused() throws IOException {
        Adam adam = Adam.builder().build();
        Path file = dir.resolve("s.safetensors");
        try (ScheduleRun saved = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(scriptScaling()), adam,
                LrSchedule.cosine(10, 0.0), null, OVERFLOWS)) {
            saved.steps(0, 3, false);
            saved.save(file);
        }
        try (ScheduleRun plain = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam), adam, null, null, OVERFLOWS)) {
            List<int[]> before = plain.snapshot();
            assertRefused(plain, file, "saved with dynamic loss scaling, this optimizer runs without it");
            ScheduleRun.assertSameBits(before, plain.snapshot(), "unchanged");
            assertFalse(plain.opt.groups().get(0).schedule().isPresent(), "no schedule was restored");
        }
        try (ScheduleRun other = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam)
                .optDynamicLossScaling(DynamicLossScaling.builder().optGrowthInterval(5).build()), adam, null, null, OVERFLOWS)) {
            assertRefused(other, file, "loss_scaler.growth_interval is 3 in the checkpoint, 5 in this optimizer");
        }
        Map<String, String> damages = new LinkedHashMap<>();
        damages.put("schedule.0", "cosine,0,0,0,0,1.0,0.0");
        damages.put("schedule.7", "constant,0,0,0,0,1.0,0.0");
        damages.put("loss_scaler.scale", "-2.0");
        damages.put("loss_scaler.growth_tracker", "3");
        String[] reasons = {"schedule.0: cosine segment: length 0 must be >= 1", "schedule.7 names no group of this optimizer",
            "loss_scaler.scale -2.0 is not finite and > 0", "growth_tracker 3 is not below the growth interval 3"};
        int i = 0;
        for (Map.Entry<String, String> d : damages.entrySet()) {
            Path damaged = dir.resolve("damaged" + i + ".safetensors");
            rewriteMetadata(file, damaged, m -> m.put(d.getKey(), d.getValue()));
            try (ScheduleRun target = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(scriptScaling()), adam,
                    null, null, OVERFLOWS)) {
                List<int[]> before = target.snapshot();
                assertRefused(target, damaged, reasons[i]);
                ScheduleRun.assertSameBits(before, target.snapshot(), "unchanged");
                assertEquals(new LossScaleState(65536, 0, 0, 0), target.opt.lossScaleState());
                assertEquals(0, target.opt.stepCount());
            }
            i++;
        }
    }

    /**
     * The scaler's factors are saved as the doubles used; a file written when they were float32
     * (its factor as the float32's shortest decimal) still loads into an optimizer with that factor,
     * and neither loads into one with another factor.
     */
    @Test
    void scalerFactorsSavedAsDoublesOrAsFloat32Load() throws IOException {
        double growth = 1.23456789; // Float.toString((float) growth) is "1.2345679"
        DynamicLossScaling scaling = DynamicLossScaling.builder().optGrowthFactor(growth).optGrowthInterval(3).build();
        Adam adam = Adam.builder().build();
        Path file = dir.resolve("double.safetensors");
        Path older = dir.resolve("float32.safetensors");
        try (ScheduleRun saved = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(scaling), adam,
                null, null, OVERFLOWS)) {
            saved.steps(0, 2, false);
            saved.save(file);
        }
        rewriteMetadata(file, older, m -> {
            assertEquals(Double.toString(growth), m.get("loss_scaler.growth_factor"));
            m.put("loss_scaler.growth_factor", Float.toString((float) growth));
        });
        for (Path p : List.of(file, older)) {
            try (ScheduleRun target = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(scaling), adam,
                    null, null, OVERFLOWS)) {
                target.load(p);
                assertEquals(2, target.opt.stepCount(), p.toString());
            }
            try (ScheduleRun other = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam).optDynamicLossScaling(
                    scaling.toBuilder().optGrowthFactor(1.2345).build()), adam, null, null, OVERFLOWS)) {
                assertRefused(other, p, "loss_scaler.growth_factor is " + (p == file ? "1.23456789" : "1.2345679")
                        + " in the checkpoint, 1.2345 in this optimizer");
            }
        }
    }

    private static void assertRefused(ScheduleRun run, Path file, String reason) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> run.load(file));
        assertTrue(e.getMessage().contains(reason), "'" + e.getMessage() + "' should say '" + reason + "'");
    }

    /** Copies a checkpoint with its metadata changed, the header checksum recomputed (a well-formed file saying something else). */
    static void rewriteMetadata(Path from, Path to, Consumer<Map<String, String>> change) throws IOException {
        byte[] bytes = Files.readAllBytes(from);
        long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        Safetensors.Header h = Safetensors.parse(from.toString(), bytes.length, bytes,
                k -> java.util.Arrays.copyOfRange(bytes, 8, 8 + k));
        Map<String, String> metadata = new LinkedHashMap<>(h.metadata());
        metadata.remove(Safetensors.HEADER_CRC_KEY);
        change.accept(metadata);
        byte[] header = Safetensors.encodeHeader(metadata, h.entries());
        byte[] out = new byte[header.length + (int) (bytes.length - 8 - n)];
        System.arraycopy(header, 0, out, 0, header.length);
        System.arraycopy(bytes, (int) (8 + n), out, header.length, (int) (bytes.length - 8 - n));
        Files.write(to, out);
    }
}
