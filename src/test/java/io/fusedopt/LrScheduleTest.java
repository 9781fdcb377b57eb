package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.LrSegments;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.function.LongToDoubleFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Learning-rate schedules on the CPU backends: each factory against PyTorch's documented formula,
 * the step counter a schedule follows, both CPU backends bit for bit, refusals that change nothing.
 * (CudaScheduleTest holds the device to the same bits.)
 */
class LrScheduleTest {
    @TempDir
    Path dir;

    @Test
    void cospiIsCosineToAFewUlps() {
        assertEquals(1.0, LrSegments.cospi(0.0));
        assertEquals(-1.0, LrSegments.cospi(1.0));
        assertEquals(0.0, LrSegments.cospi(0.5), 1e-17);
        for (int i = 0; i <= 100_000; i++) {
            double x = i / 100_000.0;
            double c = LrSegments.cospi(x);
            assertEquals(Math.cos(Math.PI * x), c, 5e-16, "x=" + x);
            assertTrue(c >= -1 && c <= 1, "x=" + x);
        }
    }

    /** Each factory against PyTorch's closed form (torch.optim.lr_scheduler), written out here with Math.cos and Math.pow. */
    @Test
    void factoriesFollowPyTorchFormulas() {
        expect(LrSchedule.constant(0.5, 4), n -> n < 4 ? 0.5 : 1.0, 10);
        expect(LrSchedule.linear(0.25, 1.0, 8), n -> 0.25 + 0.75 * Math.min(n, 8) / 8.0, 20);
        expect(LrSchedule.linearWarmup(10), n -> Math.min(n, 10) / 10.0, 20);
        expect(LrSchedule.linearDecay(10, 0.1), n -> 1 - 0.9 * Math.min(n, 10) / 10.0, 20);
        expect(LrSchedule.cosine(50, 0.1), n -> 0.1 + 0.9 * (1 + Math.cos(Math.PI * Math.min(n, 50) / 50.0)) / 2, 80);
        expect(LrSchedule.cosineWithWarmup(10, 60, 0.05),
                n -> n < 10 ? n / 10.0 : 0.05 + 0.95 * (1 + Math.cos(Math.PI * Math.min(n - 10, 50) / 50.0)) / 2, 90);
        expect(LrSchedule.step(7, 0.5), n -> Math.pow(0.5, n / 7), 40);
        expect(LrSchedule.multiStep(0.1, 5, 12, 13), n -> Math.pow(0.1, (n >= 5 ? 1 : 0) + (n >= 12 ? 1 : 0) + (n >= 13 ? 1 : 0)), 30);
        expect(LrSchedule.exponential(0.9), n -> Math.pow(0.9, n), 60);
        expect(LrSchedule.polynomial(20, 2, 0.0), n -> Math.pow(1 - Math.min(n, 20) / 20.0, 2), 30);
        expect(LrSchedule.polynomial(20, 3, 0.1), n -> 0.1 + 0.9 * Math.pow(1 - Math.min(n, 20) / 20.0, 3), 30);
        // OneCycleLR, anneal_strategy='cos', three_phase=False: phase ends at pct*total - 1 and total - 1.
        double initial = 1 / 25.0, last = initial / 1e4, end1 = 0.3 * 100 - 1, end2 = 99;
        expect(LrSchedule.oneCycle(100, 0.3, 25, 1e4), n -> n <= end1
                ? 1 + (initial - 1) / 2 * (Math.cos(Math.PI * n / end1) + 1)
                : last + (1 - last) / 2 * (Math.cos(Math.PI * Math.min(n - end1, end2 - end1) / (end2 - end1)) + 1), 120);
        // CosineAnnealingWarmRestarts: T_cur and T_i from T_0 and T_mult.
        expect(LrSchedule.warmRestarts(10, 1, 0.0), n -> (1 + Math.cos(Math.PI * (n % 10) / 10.0)) / 2, 45);
        expect(LrSchedule.warmRestarts(4, 2, 0.2), n -> {
            long tCur = n, tI = 4;
            while (tCur >= tI) { tCur -= tI; tI *= 2; }
            return 0.2 + 0.8 * (1 + Math.cos(Math.PI * tCur / tI)) / 2;
        }, 70);
        // SequentialLR: the second schedule counts from 0 at the milestone.
        expect(LrSchedule.sequence(List.of(LrSchedule.linearWarmup(5), LrSchedule.exponential(0.8)), 5),
                n -> n < 5 ? n / 5.0 : Math.pow(0.8, n - 5), 20);
        expect(LrSchedule.sequence(List.of(LrSchedule.constant(0.1), LrSchedule.linearWarmup(3), LrSchedule.cosine(10, 0)), 2, 5),
                n -> n < 2 ? 0.1 : n < 5 ? (n - 2) / 3.0 : (1 + Math.cos(Math.PI * Math.min(n - 5, 10) / 10.0)) / 2, 20);
    }

    private static void expect(LrSchedule schedule, LongToDoubleFunction pytorch, int steps) {
        for (long n = 0; n < steps; n++) {
            double expected = pytorch.applyAsDouble(n);
            assertEquals(expected, schedule.factorAt(n), 1e-15 * Math.max(1, Math.abs(expected)), schedule + " at n=" + n);
            assertTrue(schedule.factorAt(n) >= 0, schedule + " at n=" + n);
        }
        assertEquals(schedule, LrSchedule.fromText(schedule.toText()), "the checkpoint text round-trips");
    }

    /**
     * The step with counter t uses factorAt(t - 1) (PyTorch: scheduler.step() after
     * optimizer.step()); lastLearningRates() gives the next step's rate. SGD over a constant
     * gradient of 1 makes each step subtract exactly that step's float32 rate.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void eachStepUsesTheScheduledRateOfItsCounter(Backend backend) {
        LrSchedule schedule = LrSchedule.cosineWithWarmup(3, 10, 0.1);
        double lr = 0.1;
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().optLearningRate(lr).build())) {
            ParamGroup group = opt.addGroup();
            group.setSchedule(schedule);
            TensorBuffer p = opt.allocate(1), g = opt.allocate(1);
            g.copyFrom(new float[] {1f});
            group.add("w", p, g);
            float expected = 0f;
            for (int t = 1; t <= 14; t++) {
                float rate = (float) ((float) lr * schedule.factorAt(t - 1));
                assertEquals(rate, opt.lastLearningRates()[0], "before step " + t);
                assertEquals(rate, schedule.learningRateAt(lr, t - 1));
                opt.step();
                expected = Math.fma(-rate, 1f, expected);
                assertEquals(expected, p.toArray()[0], "after step " + t);
            }
            assertEquals(0f, (float) schedule.factorAt(0), "warmup starts at 0: the first step moves nothing");
        }
    }

    @Test
    void aSkippedStepDoesNotAdvanceTheSchedule() {
        LrSchedule schedule = LrSchedule.linear(1.0, 0.0, 4);
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().optLearningRate(1).build()).optBackend(Backend.CPU)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
            ParamGroup group = opt.addGroup();
            group.setSchedule(schedule);
            TensorBuffer p = opt.allocate(1), g = opt.allocate(1);
            group.add("w", p, g);
            g.copyFrom(new float[] {1f});
            opt.step();                                       // t=1 at factor 1
            assertArrayEquals(new float[] {0.75f}, opt.lastLearningRates());
            g.copyFrom(new float[] {Float.NaN});
            opt.step();                                       // skipped
            assertTrue(opt.lastStep().skipped());
            assertArrayEquals(new float[] {0.75f}, opt.lastLearningRates(), "still the second step's rate");
            g.copyFrom(new float[] {1f});
            opt.step();                                       // t=2 at factor 0.75
            assertEquals(-1.75f, p.toArray()[0]);
            assertArrayEquals(new float[] {0.5f}, opt.lastLearningRates());
        }
    }

    /** Adam with a different schedule per group: CPU_FAST equals the reference bit for bit, replayed or stepped. */
    @Test
    void bothCpuBackendsAgreeBitForBit() {
        Adam adam = Adam.adamW().optLearningRate(1e-2).build();
        LrSchedule first = LrSchedule.cosineWithWarmup(4, 20, 0.1);
        LrSchedule second = LrSchedule.sequence(List.of(LrSchedule.step(3, 0.5), LrSchedule.warmRestarts(5, 2, 0.0)), 7);
        try (ScheduleRun reference = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam), adam, first, second, Set.of(6));
             ScheduleRun fast = new ScheduleRun(ScheduleRun.builder(Backend.CPU_FAST, adam), adam, first, second, Set.of(6));
             ScheduleRun replayed = new ScheduleRun(ScheduleRun.builder(Backend.CPU_FAST, adam), adam, first, second, Set.of(6))) {
            reference.steps(0, 25, false);
            fast.steps(0, 25, false);
            replayed.steps(0, 25, true);
            assertEquals(reference.log, fast.log);
            assertEquals(reference.log, replayed.log);
            ScheduleRun.assertSameBits(reference.snapshot(), fast.snapshot(), "CPU_FAST");
            ScheduleRun.assertSameBits(reference.snapshot(), replayed.snapshot(), "CPU_FAST replayed");
        }
    }

    /** Save mid-schedule, load into a fresh optimizer without a schedule: the schedule comes back, the run continues bit for bit. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aCheckpointResumesMidSchedule(Backend loadOn) throws Exception {
        Adam adam = Adam.builder().optLearningRate(1e-2).build();
        LrSchedule first = LrSchedule.oneCycle(30, 0.3, 25, 1e4);
        LrSchedule second = LrSchedule.multiStep(0.5, 4, 9);
        Path file = dir.resolve("mid.safetensors");
        try (ScheduleRun whole = new ScheduleRun(ScheduleRun.builder(Backend.CPU, adam), adam, first, second, Set.of(3))) {
            whole.steps(0, 6, false);
            whole.save(file);
            whole.steps(6, 16, false);
            try (ScheduleRun resumed = new ScheduleRun(ScheduleRun.builder(loadOn, adam), adam, null, null, Set.of(3))) {
                resumed.load(file);
                assertEquals(first, resumed.opt.groups().get(0).schedule().orElseThrow());
                assertEquals(second, resumed.opt.groups().get(1).schedule().orElseThrow());
                resumed.steps(6, 16, false);
                assertEquals(whole.log.subList(6, 16), resumed.log);
                ScheduleRun.assertSameBits(whole.snapshot(), resumed.snapshot(), "resumed on " + loadOn);
            }
        }
    }

    @Test
    void badSchedulesAreRefusedWithTheirReason() {
        refused(() -> LrSchedule.cosineWithWarmup(200, 100, 0.0), "got warmup 200 of a total of 100");
        refused(() -> LrSchedule.cosineWithWarmup(10, 10, 0.1), "the cosine phase needs at least one step), got warmup 10 of a total of 10");
        refused(() -> LrSchedule.cosineWithWarmup(-1, 10, 0.1), "warmupSteps must be in [0, totalSteps - 1]");
        refused(() -> LrSchedule.cosine(100, -0.1), "floorFactor must be finite and >= 0, got -0.1");
        refused(() -> LrSchedule.constant(Double.NaN), "factor must be finite and >= 0, got NaN");
        refused(() -> LrSchedule.linear(1, Double.POSITIVE_INFINITY, 10), "endFactor must be finite and >= 0, got Infinity");
        refused(() -> LrSchedule.linear(1, 0, 0), "steps must be >= 1, got 0");
        refused(() -> LrSchedule.exponential(1.5), "grows without bound");
        refused(() -> LrSchedule.step(10, -0.5), "gamma must be finite and >= 0, got -0.5");
        refused(() -> LrSchedule.multiStep(0.1, 5, 5), "milestones must be positive and strictly increasing, got 5 after 5");
        refused(() -> LrSchedule.polynomial(10, -1, 0), "power must be in [0, 65536], got -1");
        refused(() -> LrSchedule.oneCycle(100, 1.5, 25, 1e4), "pctStart must be in (0, 1), got 1.5");
        refused(() -> LrSchedule.oneCycle(3, 0.3, 25, 1e4), "at least one step up and one down");
        refused(() -> LrSchedule.warmRestarts(10, 0, 0), "cycleMultiplier must be in [1, 65536], got 0");
        refused(() -> LrSchedule.sequence(List.of(LrSchedule.constant(), LrSchedule.constant())), "needs 1 milestones, got 0");
        refused(() -> LrSchedule.multiStep(0.5, new long[32]), "at most 31 milestones");
        refused(() -> LrSegments.fromText("cosine,0,0,0,0,1.0,0.0"), "length 0 must be >= 1");
        refused(() -> LrSegments.fromText("linear,0,5,0,0,-1.0,0.0"), "linear factor a must be finite and >= 0, got -1.0");
    }

    /** A schedule that would take a group's rate beyond float32, and a rate its schedule would: refused, nothing changed. */
    @Test
    void aScheduleThatOverflowsTheRateIsRefusedAndChangesNothing() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().optLearningRate(1e37).build())) {
            ParamGroup group = opt.addGroup();
            group.add("w", opt.allocate(3), opt.allocate(3));
            LrSchedule up = LrSchedule.linear(1, 100, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> group.setSchedule(up));
            assertTrue(e.getMessage().contains("exceeds float32's range"), e.getMessage());
            assertFalse(group.schedule().isPresent(), "no schedule was set");
            assertArrayEquals(new float[] {1e37f}, opt.lastLearningRates());

            group.setLearningRate(1);
            group.setSchedule(up);
            e = assertThrows(IllegalArgumentException.class, () -> group.setLearningRate(1e37));
            assertTrue(e.getMessage().contains("exceeds float32's range"), e.getMessage());
            assertEquals(1.0, group.config().learningRate(), "the rate is unchanged");
            opt.step();
            opt.step();
            assertArrayEquals(new float[] {50.5f}, opt.lastLearningRates(), "1 + 99 * 2/4 after two steps");
        }
    }

    private static void refused(Runnable call, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(message), "'" + e.getMessage() + "' should say '" + message + "'");
    }

    /** The segment kinds, table sizes and FoSegment layout of kernels/fusedopt_scalars.cuh match LrSegments and GroupTable. */
    @Test
    void theDeviceTableLayoutMatches() throws Exception {
        String header = Files.readString(Path.of("kernels", "fusedopt_scalars.cuh"));
        String[] kinds = {"CONSTANT", "LINEAR", "COSINE", "POWER", "POLYNOMIAL", "RESTARTS"};
        for (String kind : kinds) {
            assertEquals(LrSegments.class.getField(kind).getInt(null), define(header, "FO_SCHEDULE_" + kind), kind);
        }
        assertEquals(LrSegments.MAX_SEGMENTS, define(header, "FO_MAX_SEGMENTS"));
        assertEquals(io.fusedopt.internal.GroupTable.INFO_STRIDE, define(header, "FO_GROUP_INFO_STRIDE"));
        assertEquals(io.fusedopt.internal.GroupTable.INFO_SCHEDULE_CLOCK, define(header, "FO_INFO_SCHEDULE_CLOCK"));
        Matcher struct = Pattern.compile("struct FoSegment \\{\\s+// (\\d+) bytes\\n(.*?)\\n\\};", Pattern.DOTALL).matcher(header);
        assertTrue(struct.find(), "FoSegment");
        assertEquals(LrSegments.SEGMENT_BYTES, Integer.parseInt(struct.group(1)));
        // FoSegment's fields at the offsets LrSegments.encode writes.
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(LrSegments.SEGMENT_BYTES).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        new LrSegments(List.of(new LrSegments.Segment(LrSegments.RESTARTS, 0, 0, 11, 3, 0.75, 0.25))).encode(b, 0);
        Matcher field = Pattern.compile("\\s+(long long|int|double) (\\w+);\\s+//\\s*(\\d+)").matcher(struct.group(2));
        int fields = 0;
        while (field.find()) {
            int at = Integer.parseInt(field.group(3));
            Object value = switch (field.group(1)) {
                case "long long" -> b.getLong(at);
                case "int" -> b.getInt(at);
                default -> b.getDouble(at);
            };
            Object expected = switch (field.group(2)) {
                case "start", "length" -> 0L;
                case "period" -> 11L;
                case "kind" -> LrSegments.RESTARTS;
                case "power" -> 3;
                case "a" -> 0.75;
                case "b" -> 0.25;
                default -> throw new AssertionError("unknown FoSegment field " + field.group(2));
            };
            assertEquals(expected, value, field.group(2));
            fields++;
        }
        assertEquals(7, fields, "FoSegment fields");
    }

    private static int define(String source, String name) {
        Matcher m = Pattern.compile("#define " + name + "\\s+(\\d+)").matcher(source);
        assertTrue(m.find(), name + " missing");
        return Integer.parseInt(m.group(1));
    }

    /**
     * ReduceLROnPlateau's rule by hand: patience 1, cooldown 1, factor 0.5, relative threshold 0.1
     * (improving means below 0.9 * best), min lr 0.3.
     */
    @Test
    void reduceOnPlateauFollowsPyTorchsRule() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().optLearningRate(1).build())) {
            ParamGroup a = opt.addGroup();
            ParamGroup b = opt.addGroup(Sgd.builder().optLearningRate(0.5).build());
            b.setSchedule(LrSchedule.constant(0.5));
            ReduceLrOnPlateau plateau = ReduceLrOnPlateau.builder(opt).optPatience(1).optCooldown(1).optFactor(0.5)
                    .optThreshold(0.1, true).optMinLearningRate(0.3).build();
            double[] metrics = {10, 9.5, 9.4, 9.0, 8.0, 8.0, 8.0, 8.0, 8.0};
            // best 10; 9.5: bad 1; 9.4: bad 2 > 1, reduce (1 -> 0.5, 0.5 -> max(0.25, 0.3)), cooldown 1; 9.0 is not
            // below 9.0: bad 1, but the cooldown resets it; 8.0 < 9.0: best 8; 8.0: bad 1; 8.0: bad 2, reduce
            // (0.5 -> 0.3; 0.3 stays: no change); 8.0: cooldown; 8.0: bad 1.
            boolean[] reduced = {false, false, true, false, false, false, true, false, false};
            double[][] rates = {{1, 0.5}, {1, 0.5}, {0.5, 0.3}, {0.5, 0.3}, {0.5, 0.3}, {0.5, 0.3}, {0.3, 0.3}, {0.3, 0.3}, {0.3, 0.3}};
            for (int i = 0; i < metrics.length; i++) {
                assertEquals(reduced[i], plateau.step(metrics[i]), "metric " + i);
                assertEquals(rates[i][0], a.config().learningRate(), 1e-15, "group 0 after metric " + i);
                assertEquals(rates[i][1], b.config().learningRate(), 1e-15, "group 1 after metric " + i);
            }
            assertArrayEquals(new float[] {0.3f, 0.15f}, opt.lastLearningRates(), "the device schedule multiplies the reduced rate");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> plateau.step(Double.NaN));
            assertTrue(e.getMessage().contains("the metric is NaN"), e.getMessage());
            assertEquals(8.0, plateau.best());
        }
    }
}
