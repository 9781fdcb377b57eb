package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.StateQuantization;
import io.fusedopt.internal.Algorithms;
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
import picocli.CommandLine.Spec;

@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        header = "Measures optimizer steps per algorithm and size on one backend.",
        description = {"Prints, per algorithm and size, the time per step, parameters/s, GB/s and the fraction of the"
            + " copy bandwidth measured in the same run; a progress bar runs on standard error.",
            "Each row is warmed up so that the JIT has compiled its step before it is timed: at least --warmup"
            + " steps AND at least --warmup-ms milliseconds, then batches of --steps steps until the last "
            + Bench.STABLE_BATCHES + " batches took times within " + Bench.STABLE_PERCENT + "%% of each other (or, after"
            + " --warmup-max-ms, it is marked unstable). Then --repetitions repetitions of --steps steps are timed and"
            + " the median repetition gives the time per step; the spread column is the slowest repetition minus"
            + " the fastest, over the median.",
            "Every option is checked before the run: sizes must fit the backend's memory (the message gives the"
            + " limit), output files must be writable. The CUDA emulator is refused: it proves logic, not speed."})
final class BenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--algorithms", paramLabel = "<name>", split = ",", defaultValue = "adam,adamw,rmsprop,momentum,sgd",
            description = "Comma-separated, of ${COMPLETION-CANDIDATES}, in any case (default: ${DEFAULT-VALUE}).",
            completionCandidates = AlgorithmNames.class)
    List<String> algorithms;

    @Option(names = "--sizes", paramLabel = "<elements>", split = ",", defaultValue = "2^20,2^24",
            description = "Elements per tensor, numbers or powers such as 2^24, at most what the backend's memory holds"
                    + " (default: ${DEFAULT-VALUE}).")
    List<String> sizes;

    @Option(names = "--backend", paramLabel = "<backend>", defaultValue = "AUTO",
            description = "${COMPLETION-CANDIDATES}, in any case (default: ${DEFAULT-VALUE}).")
    Backend backend;

    @Option(names = "--warmup", paramLabel = "<steps>", defaultValue = "10",
            description = "Untimed steps each row takes at least first, >= 0 (default: ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--warmup-ms", paramLabel = "<ms>", defaultValue = "500", description = "Milliseconds each row's"
            + " warm-up lasts at least, >= 0 (default: ${DEFAULT-VALUE}).")
    int warmupMillis;

    @Option(names = "--warmup-max-ms", paramLabel = "<ms>", defaultValue = "30000", description = "Milliseconds after"
            + " which a row whose timing has not stabilized is measured anyway and marked unstable, >= --warmup-ms"
            + " (default: ${DEFAULT-VALUE}).")
    int warmupMaxMillis;

    @Option(names = "--repetitions", paramLabel = "<count>", defaultValue = "5",
            description = "Timed repetitions per row, >= 1; the median is reported (default: ${DEFAULT-VALUE}).")
    int repetitions;

    @Option(names = "--steps", paramLabel = "<steps>", defaultValue = "20", description = "Timed steps per repetition, >= 1"
            + " (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--state-quantization", paramLabel = "<states>", defaultValue = "NONE", description = "${COMPLETION-CANDIDATES}"
            + " (default: ${DEFAULT-VALUE}): BLOCKWISE_8BIT measures 8-bit states (rows 'adam 8-bit', ...) for the algorithms that"
            + " have them, on tensors of at least 4096 elements.")
    StateQuantization stateQuantization;

    @Option(names = "--csv", paramLabel = "<file>", description = "Also write the table as CSV to this file.")
    Path csv;

    @Option(names = "--json", paramLabel = "<file>", description = "Also write the table as JSON to this file.")
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
        List<String> names = algorithmNames();
        List<Long> elements = new ArrayList<>();
        for (String s : sizes) elements.add(Inputs.parseSize(spec, "--sizes", s));
        Bench.Plan plan = plan();
        if (csv != null) Inputs.checkOutputFile(spec, "--csv", csv);
        if (json != null) Inputs.checkOutputFile(spec, "--json", json);
        if (csv != null && json != null && csv.toAbsolutePath().normalize().equals(json.toAbsolutePath().normalize())) {
            throw Inputs.refuse(spec, "--json", "'" + json + "' is also the --csv file; name two files");
        }
        CudaProbe.Result probe = CudaProbe.result();
        if (probe.emulator() && (backend == Backend.CUDA || backend == Backend.AUTO)) {
            // AUTO would choose CUDA too; an emulator timing must never look like a GPU figure.
            throw new CommandFailure(CudaProbe.EMULATOR_BENCHMARK_REFUSAL + " (" + probe.deviceName()
                    + "); use --backend CPU_FAST or CPU to measure the CPU backends");
        }
        BackendChoice choice = BackendChoice.of(backend);
        checkMemory(choice, names, elements);
        // Created before the run, so that a folder the file system refuses is a refused option, not an hour lost.
        if (csv != null) Inputs.createFolderOf(spec, "--csv", csv);
        if (json != null) Inputs.createFolderOf(spec, "--json", json);

        List<Bench.Result> results;
        if (noProgress) {
            results = Bench.run(names, elements, choice.backend(), stateQuantization, plan, Bench.Progress.NONE);
        } else {
            PrintWriter err = spec.commandLine().getErr();
            // Redrawn in place on the command's error stream (carriage return, no new line).
            DelegatingProgressBarConsumer console = new DelegatingProgressBarConsumer(line -> {
                err.print('\r');
                err.print(line);
                err.flush();
            }, 100);
            // Counts rows, whose number is known: a row's warm-up lasts until its timing settles, so a
            // count of steps would have a total that grows while the bar runs.
            try (ProgressBar bar = new ProgressBarBuilder().setTaskName("bench").setInitialMax((long) names.size() * elements.size())
                    .setStyle(ProgressBarStyle.ASCII).setUnit(" rows", 1).setConsumer(console).build()) {
                results = Bench.run(names, elements, choice.backend(), stateQuantization, plan, new Bench.Progress() {
                    private String row = "";
                    private long rowSteps;

                    @Override
                    public void rowStarted(String algorithm, long size) {
                        row = algorithm + " " + size;
                        rowSteps = 0;
                        bar.setExtraMessage(row);
                    }

                    @Override
                    public void done(long taken) {
                        rowSteps += taken;
                        bar.setExtraMessage(row + ": " + rowSteps + " steps");
                    }

                    @Override
                    public void rowDone() {
                        bar.step();
                    }
                });
            }
            err.println();
        }
        PrintWriter out = spec.commandLine().getOut();
        out.printf("each row: warm-up of at least %d steps and %d ms, then until %d batches of %d steps agree within %d%%"
                + " (at most %d ms); then the median of %d repetitions of %d steps%n", warmup, warmupMillis,
                Bench.STABLE_BATCHES, steps, Bench.STABLE_PERCENT, warmupMaxMillis, repetitions, steps);
        print(out, results, choice.howChosen());
        out.flush();
        if (csv != null) writeCsv(csv, results);
        if (json != null) writeJson(json, results);
        return 0;
    }

    /** The --algorithms names in lower case (accepted in any case, as --backend is), each checked. */
    List<String> algorithmNames() {
        List<String> names = new ArrayList<>();
        for (String a : algorithms) {
            String name = a.trim().toLowerCase(java.util.Locale.ROOT);
            if (!Bench.ALGORITHMS.contains(name)) {
                throw Inputs.refuse(spec, "--algorithms", "unknown algorithm '" + a + "'; known: "
                        + String.join(", ", Bench.ALGORITHMS) + " (in any case)");
            }
            if (stateQuantization != StateQuantization.NONE && !Algorithms.of(Bench.config(name)).hasQuantizedStates()) {
                throw Inputs.refuse(spec, "--algorithms", "'" + name + "' has no 8-bit states (--state-quantization "
                        + stateQuantization + "); the bench configurations with them: " + String.join(", ", Bench.ALGORITHMS.stream()
                        .filter(n -> Algorithms.of(Bench.config(n)).hasQuantizedStates()).toList()));
            }
            names.add(name);
        }
        return names;
    }

    /** The warm-up and measurement rule of every row, from the options (each checked first). */
    Bench.Plan plan() {
        Inputs.requireAtLeast(spec, "--warmup", warmup, 0);
        Inputs.requireAtLeast(spec, "--warmup-ms", warmupMillis, 0);
        if (warmupMaxMillis < warmupMillis) {
            throw Inputs.refuse(spec, "--warmup-max-ms", "must be at least --warmup-ms (" + warmupMillis + "), got " + warmupMaxMillis);
        }
        Inputs.requireAtLeast(spec, "--repetitions", repetitions, 1);
        Inputs.requireAtLeast(spec, "--steps", steps, 1);
        return new Bench.Plan(warmup, warmupMillis * 1_000_000L, warmupMaxMillis * 1_000_000L, repetitions, steps);
    }

    /**
     * Refuses a size the chosen backend cannot hold (param, gradient and states, all float32) for
     * the requested algorithm that keeps the most tensors, naming the limit, before any row runs.
     */
    void checkMemory(BackendChoice choice, List<String> names, List<Long> elements) {
        String largest = names.get(0);
        for (String algorithm : names) {
            if (Bench.tensorsPerRow(algorithm) > Bench.tensorsPerRow(largest)) largest = algorithm;
        }
        int tensors = Bench.tensorsPerRow(largest);
        long max = choice.memory().maxElements(tensors, Float.BYTES);
        for (int i = 0; i < elements.size(); i++) {
            if (elements.get(i) > max) {
                throw Inputs.refuse(spec, "--sizes", sizes.get(i).trim() + " (" + elements.get(i) + " elements) does not fit "
                        + choice.backend() + ": " + largest + " keeps " + tensors + " float32 tensors of that length ("
                        + tensors * Float.BYTES + " bytes per element) and " + choice.memory().describe()
                        + ": at most " + max + " elements for " + largest);
            }
        }
    }

    /** The table; {@code howChosen} follows the device line ({@link BackendChoice#howChosen()}). */
    static void print(PrintWriter out, List<Bench.Result> results, String howChosen) {
        if (!results.isEmpty()) {
            out.println("device: " + results.get(0).device() + howChosen);
            out.printf("copy bandwidth (read + write): %.1f GB/s%n%n", results.get(0).copyGBs());
        }
        int width = "algorithm".length(); // as wide as the longest name ("ademamix 8-bit")
        for (Bench.Result r : results) width = Math.max(width, r.algorithm().length());
        String format = "%-" + width + "s %12s %-9s %10s %12s %7s %12s %9s %9s%n";
        out.printf(format, "algorithm", "elements", "backend", "warm-up", "time/step", "spread", "Mparams/s", "GB/s", "of copy");
        boolean unstable = false;
        for (Bench.Result r : results) {
            unstable |= !r.stable();
            out.printf(format, r.algorithm(), r.elements(), r.backend(), r.warmupSteps() + (r.stable() ? "" : "*"),
                    String.format("%.1f us", r.secondsPerStep() * 1e6),
                    String.format("%.0f%%", 100 * r.spread()), String.format("%.1f", r.paramsPerSecond() / 1e6),
                    String.format("%.1f", r.gbPerSecond()), String.format("%.0f%%", 100 * r.rooflineFraction()));
        }
        if (unstable) out.println("* its timing had not stabilized within --warmup-max-ms: read that row with care");
    }

    /** The CSV file: a comment line naming the device (the same for every row), the header, a line per row. */
    static void writeCsv(Path path, List<Bench.Result> results) throws IOException {
        StringBuilder b = new StringBuilder();
        if (!results.isEmpty()) b.append(Bench.Result.csvDeviceLine(results.get(0).device())).append('\n');
        b.append(Bench.Result.csvHeader()).append('\n');
        for (Bench.Result r : results) b.append(r.csvRow()).append('\n');
        Files.writeString(path, b);
    }

    /** The JSON file: {@code {"device": ..., "rows": [...]}}, the device (the same for every row) given once. */
    static void writeJson(Path path, List<Bench.Result> results) throws IOException {
        Json.Writer g = new Json.Writer(true);
        g.beginObject();
        g.name("device").value(results.isEmpty() ? "" : results.get(0).device());
        g.name("rows").beginArray();
        for (Bench.Result r : results) {
            g.beginObject();
            g.name("algorithm").value(r.algorithm());
            g.name("elements").value(r.elements());
            g.name("backend").value(r.backend());
            g.name("seconds_per_step").value(r.secondsPerStep());
            g.name("min_seconds_per_step").value(r.minSecondsPerStep());
            g.name("max_seconds_per_step").value(r.maxSecondsPerStep());
            g.name("warmup_steps").value(r.warmupSteps());
            g.name("warmup_timing").value(r.warmupTiming());
            g.name("repetitions").value(r.repetitions());
            g.name("params_per_second").value(r.paramsPerSecond());
            g.name("gb_per_second").value(r.gbPerSecond());
            g.name("copy_gb_per_second").value(r.copyGBs());
            g.name("roofline_fraction").value(r.rooflineFraction());
            g.endObject();
        }
        g.endArray();
        g.endObject();
        Files.write(path, g.toUtf8());
    }
}
