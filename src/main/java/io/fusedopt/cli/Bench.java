package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.Precision;
import io.fusedopt.StateQuantization;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cuda.DeviceCopy;
import io.fusedopt.internal.UpdatePlan;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.LongConsumer;
import java.util.function.LongSupplier;

/**
 * A quick throughput measurement for the command line: steps of one float32 tensor per algorithm
 * and size, timed after a warm-up, against the copy bandwidth of the same device measured in the
 * same run. JMH ({@code benchmarks/}) gives the figures the project publishes; this gives a user
 * the shape of them in a minute.
 *
 * <p>Each row is measured the same way (its {@link Plan}), because a row timed while the JIT still
 * compiles its step reads many times slower than the same row run later. Its warm-up takes at
 * least {@code minWarmupSteps} steps and lasts at least {@code minWarmupNanos}; then it goes on in
 * batches of {@code stepsPerRepetition} steps until the last {@link #STABLE_BATCHES} batches took
 * times within {@link #STABLE_PERCENT} percent of each other (the timing has stabilized), or until
 * {@code maxWarmupNanos} have passed (the row is then marked unstable). Then {@code repetitions}
 * repetitions of {@code stepsPerRepetition} steps are timed, and the median repetition gives the
 * time per step.
 */
final class Bench {
    private Bench() {}

    /** Consecutive warm-up batches whose times must agree for a row's timing to count as stable. */
    static final int STABLE_BATCHES = 3;

    /** How far apart those batch times may be: the slowest at most this many percent above the fastest. */
    static final int STABLE_PERCENT = 10;

/** The algorithms {@code bench} knows, by name. */
    static final List<String> ALGORITHMS = VariantCatalog.BENCHMARK_ALGORITHMS;

    /** How each row is warmed up and measured (see the class comment). */
    record Plan(long minWarmupSteps, long minWarmupNanos, long maxWarmupNanos, int repetitions, int stepsPerRepetition) {
        Plan {
            if (minWarmupSteps < 0 || minWarmupNanos < 0 || maxWarmupNanos < minWarmupNanos || repetitions < 1
                    || stepsPerRepetition < 1) {
                throw new IllegalArgumentException("warm-up minimums must be >= 0 and the maximum at least the minimum time,"
                        + " repetitions and steps >= 1: " + this);
            }
        }
    }

    /** A row's warm-up: the steps it took and whether its timing stabilized before the time limit. */
    record Warmup(long steps, boolean stable) {}

    /**
     * Told where a run is: {@code rowStarted} when a row begins, {@code done(n)} after n more of its
     * steps (its warm-up's length is not known in advance: it lasts until the timing settles), and
     * {@code rowDone} when it is measured. The number of rows is known before the run, so a progress
     * bar counts rows and its total never changes.
     */
    interface Progress {
        void rowStarted(String algorithm, long elements);

        void done(long steps);

        void rowDone();

        Progress NONE = new Progress() {
            @Override
            public void rowStarted(String algorithm, long elements) {}

            @Override
            public void done(long steps) {}

            @Override
            public void rowDone() {}
        };
    }

    /**
     * One measured configuration: the median repetition's time per step, the fastest and slowest
     * repetition's, the warm-up steps the row took and whether its timing stabilized during them.
     */
    public record Result(String algorithm, long elements, String backend, String device, double secondsPerStep,
                         double minSecondsPerStep, double maxSecondsPerStep, long warmupSteps, boolean stable, int repetitions,
                         long bytesPerStep, double copyGBs) {
        public double paramsPerSecond() {
            return elements / secondsPerStep;
        }

        public double gbPerSecond() {
            return bytesPerStep / secondsPerStep / 1e9;
        }

        public double rooflineFraction() {
            return gbPerSecond() / copyGBs;
        }

        /** The slowest repetition's distance from the fastest, as a fraction of the median: how stable the row was. */
        public double spread() {
            return (maxSecondsPerStep - minSecondsPerStep) / secondsPerStep;
        }

        /** "stable" when the warm-up's last batches agreed, else "unstable" (the time limit ended it). */
        public String warmupTiming() {
            return stable ? "stable" : "unstable";
        }

        /**
         * The CSV header. The device is the same for every row of a run and is a long sentence, so
         * it is not a column: the file's first line says it ({@link #csvDeviceLine}).
         */
        static String csvHeader() {
            return "algorithm,elements,backend,seconds_per_step,min_seconds_per_step,max_seconds_per_step,"
                    + "warmup_steps,warmup_timing,repetitions,params_per_second,gb_per_second,copy_gb_per_second,roofline_fraction";
        }

        /** The first line of the CSV file: a comment naming the device every row ran on. */
        static String csvDeviceLine(String device) {
            return "# device: " + device.replace('\n', ' ');
        }

        String csvRow() {
            return String.format(Locale.ROOT, "%s,%d,%s,%.6e,%.6e,%.6e,%d,%s,%d,%.6e,%.4f,%.4f,%.4f", algorithm, elements,
                    backend, secondsPerStep, minSecondsPerStep, maxSecondsPerStep, warmupSteps,
                    warmupTiming(), repetitions, paramsPerSecond(), gbPerSecond(), copyGBs, rooflineFraction());
        }
    }

    static OptimizerConfig config(String algorithm) {
        return VariantCatalog.benchmarkConfig(algorithm);
    }

    /** Tensors one row allocates per element: the param, the gradient and each state the algorithm keeps. */
    static int tensorsPerRow(String algorithm) {
        return 2 + UpdatePlan.of(config(algorithm)).usedSlots();
    }

    /**
     * Measures every algorithm at every size on {@code backend} (not {@link Backend#AUTO}: the
     * caller decides it once), each row by {@code plan}, with float32 states.
     */
    public static List<Result> run(List<String> algorithms, List<Long> sizes, Backend backend, Plan plan, Progress progress) {
        return run(algorithms, sizes, backend, StateQuantization.NONE, plan, progress);
    }

    /**
     * {@link #run(List, List, Backend, Plan, Progress)} with the states stored as {@code states}
     * says (8-bit from {@link StateQuantization#MIN_ELEMENTS} elements on); such a row's algorithm
     * reads "adam 8-bit" and its bytes per step count codes and absmax
     * ({@link UpdatePlan#quantizedBytesPerStep}).
     */
    public static List<Result> run(List<String> algorithms, List<Long> sizes, Backend backend, StateQuantization states, Plan plan,
                                   Progress progress) {
        for (String a : algorithms) config(a); // unknown names fail before any work
        long largest = sizes.stream().mapToLong(Long::longValue).max().orElse(1);
        List<Result> results = new ArrayList<>();
        double copyGBs = Double.NaN;
        for (String algorithm : algorithms) {
            for (long size : sizes) {
                progress.rowStarted(algorithm, size);
                try (DeviceOptimizer opt = DeviceOptimizer.builder(config(algorithm)).optBackend(backend)
                        .optStateQuantization(states).build()) {
                    if (Double.isNaN(copyGBs)) copyGBs = copyBandwidth(opt.backend(), largest);
                    TensorBuffer p = opt.allocate(size);
                    TensorBuffer g = opt.allocate(size);
                    fill(p, 1f);
                    fill(g, 1e-3f);
                    opt.addGroup().add("w", p, g);
                    Warmup warmup = warmUp(n -> {
                        for (long i = 0; i < n; i++) opt.step();
                        opt.synchronize(); // the warm-up's clock must see the steps done, not queued
                    }, plan, System::nanoTime, progress);
                    double[] seconds = new double[plan.repetitions()];
                    for (int r = 0; r < plan.repetitions(); r++) {
                        long start = System.nanoTime();
                        for (int i = 0; i < plan.stepsPerRepetition(); i++) opt.step();
                        opt.synchronize();
                        seconds[r] = (System.nanoTime() - start) / 1e9 / plan.stepsPerRepetition();
                        progress.done(plan.stepsPerRepetition());
                    }
                    double[] sorted = seconds.clone();
                    Arrays.sort(sorted);
                    UpdatePlan update = UpdatePlan.of(config(algorithm));
                    boolean quantized = states == StateQuantization.BLOCKWISE_8BIT && size >= StateQuantization.MIN_ELEMENTS;
                    long bytes = quantized ? update.quantizedBytesPerStep(size, Precision.FP32, Precision.FP32, false)
                            : update.bytesPerElement() * size;
                    results.add(new Result(quantized ? algorithm + " 8-bit" : algorithm, size, opt.backend().name(), opt.deviceDescription(), median(seconds),
                            sorted[0], sorted[sorted.length - 1], warmup.steps(), warmup.stable(), plan.repetitions(), bytes, copyGBs));
                }
                progress.rowDone();
            }
        }
        return results;
    }

    /**
     * Warms a row up by {@code plan}: {@code steps.accept(n)} takes n steps and returns once they
     * are done; {@code clock} reads nanoseconds. First single steps until both minimums are met,
     * then batches of {@code plan.stepsPerRepetition()} steps until the last {@link #STABLE_BATCHES}
     * agree within {@link #STABLE_PERCENT} percent, or until {@code plan.maxWarmupNanos()} have passed.
     * Every step taken is reported to {@code progress}.
     */
    static Warmup warmUp(LongConsumer steps, Plan plan, LongSupplier clock, Progress progress) {
        long start = clock.getAsLong();
        long taken = 0;
        while (taken < plan.minWarmupSteps() || clock.getAsLong() - start < plan.minWarmupNanos()) {
            steps.accept(1);
            taken++;
            progress.done(1);
        }
        long[] recent = new long[STABLE_BATCHES]; // the last batches' times, as a ring
        int batch = plan.stepsPerRepetition();
        for (long batches = 0; ; batches++) {
            long t0 = clock.getAsLong();
            if (batches >= STABLE_BATCHES) {
                if (stable(recent)) return new Warmup(taken, true);
                if (t0 - start >= plan.maxWarmupNanos()) return new Warmup(taken, false);
            }
            steps.accept(batch);
            recent[(int) (batches % STABLE_BATCHES)] = clock.getAsLong() - t0;
            taken += batch;
            progress.done(batch);
        }
    }

    /** The slowest of {@code times} is at most {@link #STABLE_PERCENT} percent above the fastest. */
    static boolean stable(long[] times) {
        long fastest = Long.MAX_VALUE, slowest = 0;
        for (long t : times) {
            fastest = Math.min(fastest, t);
            slowest = Math.max(slowest, t);
        }
        return 100 * (slowest - fastest) <= STABLE_PERCENT * fastest;
    }

    /** The median of {@code values} (the mean of the middle two for an even count); values is not changed. */
    static double median(double[] values) {
        if (values.length == 0) throw new IllegalArgumentException("the median of no values");
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int middle = sorted.length / 2;
        return sorted.length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static void fill(TensorBuffer buffer, float scale) {
        int block = 1 << 20;
        float[] values = new float[(int) Math.min(block, buffer.length())];
        for (int i = 0; i < values.length; i++) values[i] = scale * (float) Math.sin(i * 0.37);
        for (long at = 0; at < buffer.length(); at += block) {
            buffer.copyFrom(values, 0, at, (int) Math.min(block, buffer.length() - at));
        }
    }

    /** GB/s (bytes read plus written) of copying {@code floats} float32 values, best of 5, on the backend's memory. */
    static double copyBandwidth(Backend backend, long floats) {
        long bytes = 4 * Math.max(floats, 1 << 20);
        if (backend == Backend.CUDA) {
            try (DeviceCopy copy = new DeviceCopy(0, bytes)) {
                double best = Double.MAX_VALUE;
                for (int i = 0; i < 6; i++) {
                    long t0 = System.nanoTime();
                    copy.copy();
                    copy.synchronize();
                    if (i > 0) best = Math.min(best, (System.nanoTime() - t0) / 1e9);
                }
                return copy.bytesMoved() / best / 1e9;
            }
        }
        return hostCopyBandwidth((int) Math.min(bytes / 4, 1 << 28), backend == Backend.CPU ? 1 : Runtime.getRuntime().availableProcessors());
    }

    static double hostCopyBandwidth(int floats, int threads) {
        FloatBuffer source = ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()).asFloatBuffer();
        FloatBuffer destination = ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()).asFloatBuffer();
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            double best = Double.MAX_VALUE;
            for (int round = 0; round < 6; round++) {
                long t0 = System.nanoTime();
                List<Future<?>> parts = new ArrayList<>();
                for (int p = 0; p < threads; p++) {
                    int from = (int) ((long) floats * p / threads), to = (int) ((long) floats * (p + 1) / threads);
                    parts.add(pool.submit(() -> destination.put(from, source, from, to - from)));
                }
                for (Future<?> part : parts) part.get();
                if (round > 0) best = Math.min(best, (System.nanoTime() - t0) / 1e9);
            }
            return 8.0 * floats / best / 1e9;
        } catch (Exception e) {
            throw new IllegalStateException("copy bandwidth measurement failed", e);
        } finally {
            pool.shutdownNow();
        }
    }
}
