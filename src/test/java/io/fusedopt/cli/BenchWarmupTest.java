package io.fusedopt.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Json;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongUnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bench's warm-up rule, on a simulated clock whose steps cost what the test says (no timing is
 * asserted: this checks which steps the rule takes, not how fast anything runs).
 */
class BenchWarmupTest {
    private static final long MS = 1_000_000;

    /** A clock that only moves when a simulated step runs; step i costs {@code cost(i)} nanoseconds. */
    private static final class SimulatedSteps {
        long now;
        long taken;
        final LongUnaryOperator cost;

        SimulatedSteps(LongUnaryOperator cost) {
            this.cost = cost;
        }

        void take(long n) {
            for (long i = 0; i < n; i++) now += cost.applyAsLong(taken++);
        }
    }

    /** Counts the steps the progress bar is told of. */
    private static final class Counted implements Bench.Progress {
        long done;

        @Override
        public void rowStarted(String algorithm, long elements) {}

        @Override
        public void done(long steps) {
            done += steps;
        }

        @Override
        public void rowDone() {}
    }

    @Test
    void aRowStillCompilingIsWarmedUntilItsBatchesAgree() {
        // While the JIT compiles (the first 200 steps) a step gets twice as fast every 40 steps, from 1 ms; then
        // it costs MS / 64 for good.
        SimulatedSteps steps = new SimulatedSteps(i -> i < 200 ? MS >> (i / 40) : MS / 64);
        Bench.Plan plan = new Bench.Plan(10, 5 * MS, 10_000 * MS, 5, 20);
        Counted progress = new Counted();
        Bench.Warmup warmup = Bench.warmUp(steps::take, plan, () -> steps.now, progress);
        // 10 single steps (10 ms >= 5 ms), then batches of 20 from step 10, each faster than the one before
        // until the batch 190-209; the three batches 210-269 agree. Three equal batches while still
        // compiling would stop it too: the minimum time is there to let the compiler get going first.
        assertEquals(new Bench.Warmup(270, true), warmup);
        assertEquals(270, steps.taken);
        assertEquals(warmup.steps(), progress.done, "every step reported");
    }

    @Test
    void theMinimumTimeKeepsAFastRowWarmingUp() {
        SimulatedSteps steps = new SimulatedSteps(i -> MS);
        Bench.Warmup warmup = Bench.warmUp(steps::take, new Bench.Plan(3, 50 * MS, 1000 * MS, 5, 20), () -> steps.now,
                Bench.Progress.NONE);
        assertEquals(new Bench.Warmup(50 + 3 * 20, true), warmup, "50 steps to fill 50 ms, then three equal batches");
    }

    @Test
    void theMinimumStepsKeepASlowRowWarmingUp() {
        SimulatedSteps steps = new SimulatedSteps(i -> 100 * MS);
        Bench.Warmup warmup = Bench.warmUp(steps::take, new Bench.Plan(12, 5 * MS, 100_000 * MS, 1, 2), () -> steps.now,
                Bench.Progress.NONE);
        assertEquals(new Bench.Warmup(12 + 3 * 2, true), warmup);
    }

    @Test
    void aRowThatNeverSettlesStopsAtTheLimitMarkedUnstable() {
        // Every other batch of 20 steps is twice as slow: never three agreeing batches.
        SimulatedSteps steps = new SimulatedSteps(i -> (i / 20) % 2 == 0 ? MS : 2 * MS);
        Counted progress = new Counted();
        Bench.Plan plan = new Bench.Plan(0, 0, 500 * MS, 5, 20);
        Bench.Warmup warmup = Bench.warmUp(steps::take, plan, () -> steps.now, progress);
        assertFalse(warmup.stable());
        assertTrue(steps.now >= 500 * MS, "warmed up to the limit: " + steps.now);
        assertTrue(steps.now < 500 * MS + 40 * MS, "and stopped at the first batch boundary after it: " + steps.now);
        assertEquals(warmup.steps(), progress.done);
    }

    @Test
    void stableMeansTheSlowestBatchIsAtMostTenPercentAboveTheFastest() {
        assertTrue(Bench.stable(new long[] {100, 110, 105}));
        assertFalse(Bench.stable(new long[] {100, 111, 105}));
        assertEquals(10, Bench.STABLE_PERCENT, "the help text and README say 10%");
    }

    @Test
    void theMedianRepetitionIsReported() {
        double[] odd = {5, 1, 3};
        assertEquals(3, Bench.median(odd));
        assertArrayEquals(new double[] {5, 1, 3}, odd, "not reordered");
        assertEquals(2.5, Bench.median(new double[] {4, 1, 3, 2}));
        assertEquals(7, Bench.median(new double[] {7}));
    }

    @Test
    void aPlanRefusesValuesTheRuleCannotUse() {
        assertThrows(IllegalArgumentException.class, () -> new Bench.Plan(-1, 0, 0, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> new Bench.Plan(0, 10, 9, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> new Bench.Plan(0, 0, 0, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> new Bench.Plan(0, 0, 0, 1, 0));
    }

    /**
     * The options reach every row: with no time minimum and no time to settle, a row takes exactly
     * --warmup steps and three batches of --steps, then --repetitions timed repetitions.
     */
    @Test
    void benchAppliesTheWarmupOptionsToEveryRow(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        StringWriter out = new StringWriter(), err = new StringWriter();
        int status = FusedOptCli.execute(new PrintWriter(out, true), new PrintWriter(err, true), "bench", "--backend", "CPU",
                "--algorithms", "sgd,adam", "--sizes", "100", "--warmup", "7", "--warmup-ms", "0", "--warmup-max-ms", "0",
                "--repetitions", "3", "--steps", "2", "--no-progress", "--json", json.toString());
        assertEquals(0, status, out + "\n" + err);
        assertTrue(out.toString().contains("each row: warm-up of at least 7 steps and 0 ms, then until 3 batches of 2 steps agree"
                + " within 10% (at most 0 ms); then the median of 3 repetitions of 2 steps"), out.toString());
        Json.Reader p = new Json.Reader(Files.readString(json), 4, 1000, 10_000);
        int rows = 0;
        p.beginObject();
        assertTrue(p.hasNext());
        assertEquals("device", p.nextName());
        p.nextString();
        assertTrue(p.hasNext());
        assertEquals("rows", p.nextName());
        p.beginArray();
        while (p.hasNext()) {
            rows++;
            p.beginObject();
            while (p.hasNext()) {
                String field = p.nextName();
                if (p.peek() == Json.Kind.STRING) {
                    String value = p.nextString();
                    if (field.equals("warmup_timing")) assertTrue(value.equals("stable") || value.equals("unstable"), value);
                } else {
                    double value = p.nextDouble();
                    if (field.equals("warmup_steps")) assertEquals(7 + 3 * 2, value, "row " + rows);
                    if (field.equals("repetitions")) assertEquals(3, value, "row " + rows);
                    if (field.equals("min_seconds_per_step") || field.equals("max_seconds_per_step")) {
                        assertTrue(value > 0, field);
                    }
                }
            }
        }
        assertFalse(p.hasNext(), "the rows are the last member");
        p.end();
        assertEquals(2, rows);
    }
}
