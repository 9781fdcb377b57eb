package io.fusedopt.bench;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.internal.UpdatePlan;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * The CPU comparison in one JMH run: the host copy bandwidth (every core, and one core), the CPU
 * reference backend, the fast CPU backend and ND4J's updaters, for Adam, RMSProp and Nesterov
 * momentum on one float32 tensor of 2^16 to 2^26 elements. Writes benchmarks/results/DATE-cpu.json
 * (one {@link BenchmarkRecord} a line) and a markdown table with parameters/s, GB/s (the bytes
 * each algorithm must move per parameter, the same count for every implementation), the fraction
 * of the all-core copy bandwidth, and the speed-up over ND4J.
 *
 * <pre>benchmarks/cpu-report.sh [--quick] [--out DIR]</pre>
 */
public final class CpuReport {
    private CpuReport() {}

    private static final String[] SIZES = {"65536", "262144", "1048576", "4194304", "16777216", "67108864"};
    private static final String[] QUICK_SIZES = {"65536", "1048576", "16777216"};

    public static void main(String[] args) throws RunnerException, IOException {
        boolean quick = List.of(args).contains("--quick");
        int outIndex = List.of(args).indexOf("--out");
        Path out = Path.of(outIndex >= 0 ? args[outIndex + 1] : "benchmarks/results");
        String[] sizes = quick ? QUICK_SIZES : SIZES;

        ChainedOptionsBuilder options = new OptionsBuilder()
                .include(HostCopyBenchmark.class.getSimpleName())
                .include(StepBenchmark.class.getSimpleName())
                .include(Nd4jUpdaterBenchmark.class.getSimpleName())
                .param("threads", "0", "1")
                .param("backend", "CPU", "CPU_FAST")
                .param("algorithm", "adam", "rmsprop", "momentum")
                .param("tensorSet", "one")
                .param("storage", "fp32")
                .param("size", sizes)
                .forks(1)
                .warmupIterations(quick ? 1 : 2).warmupTime(TimeValue.seconds(1))
                .measurementIterations(quick ? 2 : 3).measurementTime(TimeValue.seconds(1));
        Collection<RunResult> results = new Runner(options.build()).run();

        double copyAllCores = Double.NaN, copyOneCore = Double.NaN;
        for (RunResult r : results) {
            if (!r.getParams().getBenchmark().endsWith("HostCopyBenchmark.copy")) continue;
            double gbs = 8.0 * Long.parseLong(r.getParams().getParam("floats")) / seconds(r) / 1e9;
            if (r.getParams().getParam("threads").equals("0")) copyAllCores = gbs;
            else copyOneCore = gbs;
        }
        String machine = machine();
        String fast;
        try (DeviceOptimizer probe = DeviceOptimizer.create(Backend.CPU_FAST, StepBenchmark.config("sgd"))) {
            fast = probe.deviceDescription(); // this JVM has the module too (cpu-report.sh adds it)
        }
        List<BenchmarkRecord> records = new ArrayList<>();
        Map<String, Double> nd4jSeconds = new LinkedHashMap<>();
        for (RunResult r : results) {
            String benchmark = r.getParams().getBenchmark();
            boolean nd4j = benchmark.endsWith("Nd4jUpdaterBenchmark.step");
            if (!nd4j && !benchmark.endsWith("StepBenchmark.step")) continue;
            String algorithm = r.getParams().getParam("algorithm");
            long size = Long.parseLong(r.getParams().getParam("size"));
            long bytes = UpdatePlan.of(StepBenchmark.config(algorithm)).bytesPerElement() * size;
            String backend = nd4j ? "CPU" : r.getParams().getParam("backend");
            records.add(new BenchmarkRecord(nd4j ? "nd4j-1.0.0-M2.1" : "fusedopt", algorithm, "default", "fp32", "one:" + size,
                    backend, machine, "n/a", seconds(r), bytes, copyAllCores));
            if (nd4j) nd4jSeconds.put(algorithm + "/" + size, seconds(r));
        }
        records.sort((a, b) -> {
            int c = a.algorithm().compareTo(b.algorithm());
            if (c != 0) return c;
            c = Long.compare(elements(a), elements(b));
            return c != 0 ? c : (a.implementation() + a.backend()).compareTo(b.implementation() + b.backend());
        });

        Files.createDirectories(out);
        String stem = LocalDate.now() + "-cpu" + (quick ? "-quick" : "");
        StringBuilder json = new StringBuilder();
        StringBuilder md = new StringBuilder("# CPU backends and ND4J, one float32 tensor\n\n")
                .append("- date: ").append(LocalDate.now()).append("\n- machine: ").append(machine)
                .append("\n- fast backend: ").append(fast)
                .append(String.format(Locale.ROOT, "%n- copy bandwidth (read + write, off-heap, every core): %.1f GB/s;"
                        + " one core: %.1f GB/s%n", copyAllCores, copyOneCore))
                .append("- command: `benchmarks/cpu-report.sh ").append(String.join(" ", args)).append("`\n")
                .append("- GB/s counts the bytes the algorithm must move per parameter (Adam 28, RMSProp and momentum 20)"
                        + " for every implementation; time/step is JMH's average.\n\n")
                .append("| algorithm | elements | implementation | time/step | Mparams/s | GB/s | of copy bandwidth | vs ND4J |\n")
                .append("|---|---|---|---|---|---|---|---|\n");
        for (BenchmarkRecord r : records) {
            json.append(r.toJson()).append('\n');
            long n = elements(r);
            Double peer = nd4jSeconds.get(r.algorithm() + "/" + n);
            String name = r.implementation().startsWith("nd4j") ? r.implementation()
                    : r.backend().equals("CPU") ? "fusedopt CPU (reference)" : "fusedopt CPU_FAST";
            md.append(String.format(Locale.ROOT, "| %s | 2^%d | %s | %.1f us | %.0f | %.1f | %.0f%% | %s |%n", r.algorithm(),
                    63 - Long.numberOfLeadingZeros(n), name, r.secondsPerStep() * 1e6, n / r.secondsPerStep() / 1e6,
                    r.gbPerSecond(), 100 * r.rooflineFraction(),
                    peer == null ? "n/a" : String.format(Locale.ROOT, "%.2fx", peer / r.secondsPerStep())));
        }
        Files.writeString(out.resolve(stem + ".json"), json);
        Files.writeString(out.resolve(stem + ".md"), md);
        System.out.println(md);
        System.out.println("wrote " + out.resolve(stem + ".json") + " and .md");
    }

    private static long elements(BenchmarkRecord r) {
        return Long.parseLong(r.tensorSet().substring("one:".length()));
    }

    private static double seconds(RunResult r) {
        return r.getPrimaryResult().getScore() * 1e-6; // AverageTime in microseconds per operation
    }

    private static String machine() {
        String cpu = "unknown CPU";
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    cpu = line.substring(line.indexOf(':') + 1).trim();
                    break;
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: the architecture below still says something
        }
        return cpu + ", " + Runtime.getRuntime().availableProcessors() + " cores, " + System.getProperty("os.arch")
                + ", Java " + System.getProperty("java.version");
    }
}
