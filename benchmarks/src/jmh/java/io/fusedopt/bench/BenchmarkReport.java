package io.fusedopt.bench;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.cuda.CudaProbe;
import io.fusedopt.internal.UpdatePlan;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * Runs the step and copy benchmarks for one backend in one JMH run and writes
 * benchmarks/results/DATE-BACKEND.json (one {@link BenchmarkRecord} a line) and a markdown table
 * beside it: time per step, GB/s from the bytes each kernel moves, and the fraction of the copy
 * bandwidth measured in the same run.
 *
 * <pre>
 * java -cp ... io.fusedopt.bench.BenchmarkReport CPU|CUDA [--quick] [--out DIR]
 * </pre>
 */
public final class BenchmarkReport {
    private BenchmarkReport() {}

    public static void main(String[] args) throws RunnerException, IOException {
        if (args.length < 1) {
            System.err.println("usage: BenchmarkReport CPU|CUDA [--quick] [--out DIR]");
            System.exit(2);
        }
        String backend = Backend.valueOf(args[0]).name();
        if (backend.equals("CUDA") && CudaProbe.result().emulator()) {
            // The benchmarks would refuse one by one; say it once, before JMH starts.
            System.err.println(CudaProbe.EMULATOR_BENCHMARK_REFUSAL);
            System.exit(1);
        }
        boolean quick = List.of(args).contains("--quick");
        int outIndex = List.of(args).indexOf("--out");
        Path out = Path.of(outIndex >= 0 ? args[outIndex + 1] : "benchmarks/results");

        ChainedOptionsBuilder options = new OptionsBuilder()
                .include(StepBenchmark.class.getSimpleName())
                .include(CopyBenchmark.class.getSimpleName())
                .include(GraphReplayBenchmark.class.getSimpleName())
                .param("backend", backend)
                .forks(1);
        if (quick) {
            options.warmupIterations(1).measurementIterations(2).warmupTime(TimeValue.seconds(1))
                    .measurementTime(TimeValue.seconds(1)).param("size", "1048576").param("floats", "16777216")
                    .param("tensorSet", "one").param("tensors", "100");
        }
        Collection<RunResult> results = new Runner(options.build()).run();

        double copyGBs = Double.NaN;
        for (RunResult r : results) {
            if (r.getParams().getBenchmark().endsWith("CopyBenchmark.copy")) {
                long floats = Long.parseLong(r.getParams().getParam("floats"));
                copyGBs = 8.0 * floats / seconds(r) / 1e9;
            }
        }
        String[] device = describe(backend);
        List<BenchmarkRecord> records = new ArrayList<>();
        for (RunResult r : results) {
            String benchmark = r.getParams().getBenchmark();
            if (benchmark.endsWith("GraphReplayBenchmark.step")) {
                int tensors = Integer.parseInt(r.getParams().getParam("tensors"));
                long bytes = UpdatePlan.of(Adam.builder().build()).bytesPerElement() * GraphReplayBenchmark.elements(tensors);
                records.add(new BenchmarkRecord("fusedopt", "adam", r.getParams().getParam("mode") + "+skip-check", "fp32",
                        "tiny:" + tensors, backend, device[0], device[1], seconds(r), bytes, copyGBs));
                continue;
            }
            if (!benchmark.endsWith("StepBenchmark.step")) continue;
            String algorithm = r.getParams().getParam("algorithm");
            String set = r.getParams().getParam("tensorSet");
            String storage = r.getParams().getParam("storage");
            long[] lengths = TensorSets.named(set, Long.parseLong(r.getParams().getParam("size")));
            long elements = TensorSets.total(lengths);
            records.add(new BenchmarkRecord("fusedopt", algorithm, "default", storage, set.equals("one") ? "one:" + elements : set,
                    backend, device[0], device[1], seconds(r), StepBenchmark.bytesPerStep(algorithm, storage, lengths), copyGBs));
        }

        Files.createDirectories(out);
        String stem = LocalDate.now() + "-" + backend.toLowerCase(Locale.ROOT) + (quick ? "-quick" : "");
        StringBuilder json = new StringBuilder();
        StringBuilder md = new StringBuilder("# fusedopt step benchmark, " + backend + "\n\n")
                .append("- date: ").append(LocalDate.now()).append("\n- device: ").append(device[0])
                .append("\n- driver: ").append(device[1])
                .append(String.format(Locale.ROOT, "\n- copy bandwidth (read + write): %.1f GB/s%n", copyGBs))
                .append("- command: `java ... io.fusedopt.bench.BenchmarkReport ").append(String.join(" ", args)).append("`\n\n")
                .append(BenchmarkRecord.markdownHeader()).append('\n');
        for (BenchmarkRecord record : records) {
            json.append(record.toJson()).append('\n');
            md.append(record.toMarkdownRow()).append('\n');
        }
        Files.writeString(out.resolve(stem + ".json"), json);
        Files.writeString(out.resolve(stem + ".md"), md);
        System.out.println(md);
        System.out.println("wrote " + out.resolve(stem + ".json") + " and .md");
    }

    private static double seconds(RunResult r) {
        // AverageTime in microseconds per operation
        return r.getPrimaryResult().getScore() * 1e-6;
    }

    /** Device description and driver of the backend, as this process sees them. */
    private static String[] describe(String backend) {
        if (backend.equals("CUDA")) {
            try (DeviceOptimizer probe = DeviceOptimizer.create(Backend.CUDA, StepBenchmark.config("sgd"))) {
                int v = CudaProbe.result().driverCudaVersion();
                return new String[] {probe.deviceDescription(), "CUDA " + v / 1000 + "." + (v % 1000) / 10};
            }
        }
        return new String[] {System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors()
                + " cores, Java " + System.getProperty("java.version"), "n/a"};
    }
}
