package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cuda.DeviceCopy;
import io.fusedopt.internal.UpdatePlan;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.LongConsumer;

/**
 * A quick throughput measurement for the command line: steps of one float32 tensor per algorithm
 * and size, timed after a warm-up, against the copy bandwidth of the same device measured in the
 * same run. JMH ({@code benchmarks/}) gives the figures the project publishes; this gives a user
 * the shape of them in a minute.
 */
final class Bench {
    private Bench() {}

    /** The algorithms {@code bench} knows, by name. */
    static final List<String> ALGORITHMS = VariantCatalog.BENCHMARK_ALGORITHMS;

    /** One measured configuration. */
    public record Result(String algorithm, long elements, String backend, String device, double secondsPerStep,
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

        static String csvHeader() {
            return "algorithm,elements,backend,device,seconds_per_step,params_per_second,gb_per_second,copy_gb_per_second,roofline_fraction";
        }

        String csvRow() {
            return String.format(Locale.ROOT, "%s,%d,%s,\"%s\",%.6e,%.6e,%.4f,%.4f,%.4f", algorithm, elements, backend,
                    device.replace("\"", "\"\""), secondsPerStep, paramsPerSecond(), gbPerSecond(), copyGBs, rooflineFraction());
        }
    }

    static OptimizerConfig config(String algorithm) {
        return VariantCatalog.benchmarkConfig(algorithm);
    }

    /**
     * Measures every algorithm at every size on {@code backend}; {@code progress} receives the
     * number of steps taken since its last call (warm-up included).
     */
    public static List<Result> run(List<String> algorithms, List<Long> sizes, Backend backend, int warmup, int steps,
                                   LongConsumer progress) {
        for (String a : algorithms) config(a); // unknown names fail before any work
        long largest = sizes.stream().mapToLong(Long::longValue).max().orElse(1);
        List<Result> results = new ArrayList<>();
        double copyGBs = Double.NaN;
        for (String algorithm : algorithms) {
            for (long size : sizes) {
                try (DeviceOptimizer opt = DeviceOptimizer.create(backend, config(algorithm))) {
                    if (Double.isNaN(copyGBs)) copyGBs = copyBandwidth(opt.backend(), largest);
                    TensorBuffer p = opt.allocate(size);
                    TensorBuffer g = opt.allocate(size);
                    fill(p, 1f);
                    fill(g, 1e-3f);
                    opt.addGroup().add("w", p, g);
                    for (int i = 0; i < warmup; i++) opt.step();
                    opt.synchronize();
                    progress.accept(warmup);
                    long start = System.nanoTime();
                    for (int i = 0; i < steps; i++) opt.step();
                    opt.synchronize();
                    double seconds = (System.nanoTime() - start) / 1e9 / steps;
                    progress.accept(steps);
                    long bytes = UpdatePlan.of(config(algorithm)).bytesPerElement() * size;
                    results.add(new Result(algorithm, size, opt.backend().name(), opt.deviceDescription(), seconds, bytes, copyGBs));
                }
            }
        }
        return results;
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
