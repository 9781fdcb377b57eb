package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.cuda.CudaProbe;
import io.fusedopt.internal.Json;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.DelegatingProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Measures optimizer steps per algorithm and size on one backend: parameters/s, GB/s and the",
            "fraction of the copy bandwidth measured in the same run. A progress bar runs on standard error."})
final class BenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--algorithms", split = ",", defaultValue = "adam,adamw,rmsprop,momentum,sgd",
            description = "Comma-separated, of ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).",
            completionCandidates = AlgorithmNames.class)
    List<String> algorithms;

    @Option(names = "--sizes", split = ",", defaultValue = "2^20,2^24",
            description = "Elements per tensor, numbers or powers such as 2^24 (default: ${DEFAULT-VALUE}).")
    List<String> sizes;

    @Option(names = "--backend", defaultValue = "AUTO", description = "${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    Backend backend;

    @Option(names = "--warmup", defaultValue = "5", description = "Untimed steps first (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--steps", defaultValue = "20", description = "Timed steps (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--csv", description = "Also write the table as CSV here.")
    Path csv;

    @Option(names = "--json", description = "Also write the table as JSON here.")
    Path json;

    @Option(names = "--no-progress", description = "No progress bar (for logs).")
    boolean noProgress;

    static final class AlgorithmNames extends ArrayList<String> {
        AlgorithmNames() {
            super(Bench.ALGORITHMS);
        }
    }

    @Override
    public Integer call() throws IOException {
        List<Long> elements = new ArrayList<>();
        for (String s : sizes) elements.add(parseSize(s));
        for (String a : algorithms) {
            if (!Bench.ALGORITHMS.contains(a)) {
                throw new ParameterException(spec.commandLine(), "unknown algorithm '" + a + "'; known: " + Bench.ALGORITHMS);
            }
        }
        if (steps < 1 || warmup < 0) throw new ParameterException(spec.commandLine(), "--steps must be >= 1 and --warmup >= 0");
        CudaProbe.Result probe = CudaProbe.result();
        if (probe.emulator() && (backend == Backend.CUDA || backend == Backend.AUTO)) {
            // AUTO would choose CUDA too; an emulator timing must never look like a GPU figure.
            spec.commandLine().getErr().println(CudaProbe.EMULATOR_BENCHMARK_REFUSAL + " (" + probe.deviceName()
                    + "); use --backend CPU_FAST or CPU to measure the CPU backends");
            return 1;
        }
        long total = (long) algorithms.size() * elements.size() * (warmup + steps);
        List<Bench.Result> results;
        if (noProgress) {
            results = Bench.run(algorithms, elements, backend, warmup, steps, n -> {});
        } else {
            PrintWriter err = spec.commandLine().getErr();
            // Redrawn in place on the command's error stream (carriage return, no new line).
            DelegatingProgressBarConsumer console = new DelegatingProgressBarConsumer(line -> {
                err.print('\r');
                err.print(line);
                err.flush();
            }, 100);
            try (ProgressBar bar = new ProgressBarBuilder().setTaskName("bench").setInitialMax(total)
                    .setStyle(ProgressBarStyle.ASCII).setUnit(" steps", 1).setConsumer(console).build()) {
                results = Bench.run(algorithms, elements, backend, warmup, steps, bar::stepBy);
            }
            err.println();
        }
        PrintWriter out = spec.commandLine().getOut();
        print(out, results);
        if (csv != null) writeCsv(csv, results);
        if (json != null) writeJson(json, results);
        out.flush();
        return 0;
    }

    /** A positive element count: "1048576" or "2^20". */
    long parseSize(String text) {
        try {
            String t = text.trim();
            long value = t.startsWith("2^") ? 1L << Integer.parseInt(t.substring(2)) : Long.parseLong(t);
            if (value < 1 || (t.startsWith("2^") && Integer.parseInt(t.substring(2)) > 40)) throw new NumberFormatException();
            return value;
        } catch (NumberFormatException e) {
            throw new ParameterException(spec.commandLine(), "invalid size '" + text + "': a positive number or 2^k (k <= 40)");
        }
    }

    static void print(PrintWriter out, List<Bench.Result> results) {
        if (!results.isEmpty()) {
            out.println("device: " + results.get(0).device());
            out.printf("copy bandwidth (read + write): %.1f GB/s%n%n", results.get(0).copyGBs());
        }
        String format = "%-9s %12s %-9s %12s %12s %9s %9s%n";
        out.printf(format, "algorithm", "elements", "backend", "time/step", "Mparams/s", "GB/s", "of copy");
        for (Bench.Result r : results) {
            out.printf(format, r.algorithm(), r.elements(), r.backend(), String.format("%.1f us", r.secondsPerStep() * 1e6),
                    String.format("%.1f", r.paramsPerSecond() / 1e6), String.format("%.1f", r.gbPerSecond()),
                    String.format("%.0f%%", 100 * r.rooflineFraction()));
        }
    }

    static void writeCsv(Path path, List<Bench.Result> results) throws IOException {
        StringBuilder b = new StringBuilder(Bench.Result.csvHeader()).append('\n');
        for (Bench.Result r : results) b.append(r.csvRow()).append('\n');
        Files.writeString(path, b);
    }

    static void writeJson(Path path, List<Bench.Result> results) throws IOException {
        Json.Writer g = new Json.Writer(true);
        g.beginArray();
        for (Bench.Result r : results) {
            g.beginObject();
            g.name("algorithm").value(r.algorithm());
            g.name("elements").value(r.elements());
            g.name("backend").value(r.backend());
            g.name("device").value(r.device());
            g.name("seconds_per_step").value(r.secondsPerStep());
            g.name("params_per_second").value(r.paramsPerSecond());
            g.name("gb_per_second").value(r.gbPerSecond());
            g.name("copy_gb_per_second").value(r.copyGBs());
            g.name("roofline_fraction").value(r.rooflineFraction());
            g.endObject();
        }
        g.endArray();
        Files.write(path, g.toUtf8());
    }
}
