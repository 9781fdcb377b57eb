package io.fusedopt.bench;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.internal.Json;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.StringJoiner;
import java.util.regex.Pattern;
import org.openjdk.jmh.results.BenchmarkResult;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

/**
 * The CPU comparison, in one run: {@code CPU_FAST}'s step ({@link StepBenchmark}) beside its own
 * same-traffic kernel ({@link SameTrafficBenchmark}, the honest roofline), the all-core copy
 * bandwidth ({@link HostCopyBenchmark}, context only), the algorithms with 8-bit states with them
 * (storage "fp32-q8") beside their float32-state rows, torch.optim with foreach=True and False
 * (benchmarks/torch_optim.py) and, when the {@code nd4j} Maven profile put it on the classpath,
 * ND4J's updaters ({@code Nd4jUpdaterBenchmark}). The two sides alternate by rounds (ours, theirs,
 * ours, theirs, ...) so that a machine that changes speed during the run changes both; each side
 * reports the median over every measured iteration of every round, an iteration being the mean
 * time per step over a fixed duration on both sides.
 *
 * <p>Writes benchmarks/results/DATE-cpu-jdkN[-quick].md (one table, with the run's JDK, machine,
 * date and command, and every unmet target marked) and the same rows as JSON beside it.
 *
 * <pre>benchmarks/cpu-report.sh [--quick] [--rounds N] [--jdk DIR] [--no-torch] [--no-nd4j] [--out DIR]</pre>
 */
public final class CpuReport {
    private CpuReport() {}

    /** The algorithms of the comparison with PyTorch, in table order. */
    static final List<String> ALGORITHMS = List.of("adam", "adamw", "rmsprop", "adagrad", "momentum", "heavy-ball", "sgd",
            "nadam", "radam", "adamax", "adadelta", "rprop", "asgd");
    /** The roofline's heaviest traffic (36 B per fp32 param), measured at fewer sizes. */
    static final List<String> EXTRA_ALGORITHMS = List.of("amsgrad", "rmsprop-centered-momentum");
    /** The algorithms of the table with 8-bit states ({@link io.fusedopt.StateQuantization#BLOCKWISE_8BIT}), measured with them too. */
    static final List<String> QUANTIZED_ALGORITHMS = List.of("adam", "adamw", "rmsprop", "adagrad", "momentum", "heavy-ball");
    /** The storage of the 8-bit rows: fp32 params and grads, 8-bit states. */
    static final String QUANTIZED_STORAGE = "fp32" + StepBenchmark.QUANTIZED_SUFFIX;
    /** Algorithms with the 3x-PyTorch target (compute-heavy enough that fusion pays thrice). */
    static final Set<String> THREE_X = Set.of("adam", "adamw", "rmsprop", "adagrad");
    /** The algorithms Nd4jUpdaterBenchmark has. */
    static final Set<String> ND4J_ALGORITHMS = Set.of("adam", "rmsprop", "momentum");
    static final String ND4J_BENCHMARK = "io.fusedopt.bench.Nd4jUpdaterBenchmark";

    static final double SAME_TRAFFIC_TARGET = 0.90;
    /** An 8-bit row's share of its own same-traffic kernel (issue 29: quantizing is compute the float path has not). */
    static final double QUANTIZED_SAME_TRAFFIC_TARGET = 0.80;
    static final double PYTORCH_TARGET = 1.0;
    static final double PYTORCH_TARGET_HEAVY = 3.0;
    static final double MANY_TENSOR_TOLERANCE = 0.10;
    static final String TRANSFORMER = "transformer";

    /** One row of the table: an algorithm, a storage format and a tensor set ("one:N" or "transformer"). */
    record Case(String algorithm, String storage, String set) {
        long[] lengths() {
            return set.equals(TRANSFORMER) ? TensorSets.transformer() : TensorSets.one(Long.parseLong(set.substring("one:".length())));
        }

        long elements() {
            return TensorSets.total(lengths());
        }

        long bytesPerStep() {
            return StepBenchmark.bytesPerStep(algorithm, storage, lengths());
        }

        String key() {
            return algorithm + "/" + storage + "/" + set;
        }
    }

    /** What a run measures and how long: parsed from the command line. */
    record Plan(boolean quick, int rounds, int warmupIterations, int warmupMillis, int iterations, int iterationMillis,
                List<Long> oneSizes, List<String> manyTensorAlgorithms, List<String> bf16Sets, List<String> extraSets,
                List<String> quantizedSets, long copyFloats, boolean torch, String python, boolean nd4jWanted, Path out,
                String command) {

        static final String USAGE = "usage: CpuReport [--quick] [--rounds N] [--no-torch] [--python PATH] [--no-nd4j]"
                + " [--out DIR] [--command TEXT]";

        static Plan parse(String... args) {
            boolean quick = false, torch = true, nd4j = true;
            int rounds = 2;
            String python = "/usr/bin/python3", out = "benchmarks/results", command = null;
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--quick" -> quick = true;
                    case "--no-torch" -> torch = false;
                    case "--no-nd4j" -> nd4j = false;
                    case "--rounds" -> rounds = parseRounds(value(args, i++));
                    case "--python" -> python = value(args, i++);
                    case "--out" -> out = value(args, i++);
                    case "--command" -> command = value(args, i++);
                    default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "'; " + USAGE);
                }
            }
            if (command == null) command = "java ... io.fusedopt.bench.CpuReport " + String.join(" ", args);
            long total = TensorSets.total(TensorSets.transformer());
            if (quick) {
                // Seconds, not minutes: the 168.6M-element sets only for SGD (the cheapest), to prove their path.
                return new Plan(true, rounds, 1, 100, 2, 100, List.of(1L << 16, 1L << 20), List.of("sgd"), List.of("one:" + (1 << 20)),
                        List.of("one:" + (1 << 20)), List.of("one:" + (1 << 20)), 1L << 24, torch, python, nd4j, Path.of(out), command);
            }
            List<Long> sizes = new ArrayList<>();
            for (int log = 16; log <= 26; log += 2) sizes.add(1L << log);
            return new Plan(false, rounds, 1, 500, 2, 500, List.copyOf(sizes), ALGORITHMS, List.of("one:" + total, TRANSFORMER),
                    List.of("one:" + (1 << 20), "one:" + (1 << 24)), List.of("one:" + (1 << 20), "one:" + (1 << 24)), 1L << 26,
                    torch, python, nd4j, Path.of(out), command);
        }

        private static String value(String[] args, int i) {
            if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
                throw new IllegalArgumentException(args[i] + " needs a value; " + USAGE);
            }
            return args[i + 1];
        }

        private static int parseRounds(String text) {
            int rounds;
            try {
                rounds = Integer.parseInt(text);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--rounds needs a whole number, got '" + text + "'");
            }
            if (rounds < 1) throw new IllegalArgumentException("--rounds must be at least 1, got " + rounds);
            return rounds;
        }

        /**
         * Every row, in table order: per algorithm, fp32 by size (the transformer after its same-size
         * tensor), then bf16, then 8-bit states (sizes among the fp32 ones, which they are held against).
         */
        List<Case> cases() {
            List<Case> cases = new ArrayList<>();
            long total = TensorSets.total(TensorSets.transformer());
            for (String algorithm : ALGORITHMS) {
                for (long n : oneSizes) cases.add(new Case(algorithm, "fp32", "one:" + n));
                if (manyTensorAlgorithms.contains(algorithm)) {
                    cases.add(new Case(algorithm, "fp32", "one:" + total));
                    cases.add(new Case(algorithm, "fp32", TRANSFORMER));
                }
                for (String set : bf16Sets) cases.add(new Case(algorithm, "bf16-master", set));
                if (QUANTIZED_ALGORITHMS.contains(algorithm)) {
                    for (String set : quantizedSets) cases.add(new Case(algorithm, QUANTIZED_STORAGE, set));
                }
            }
            for (String algorithm : EXTRA_ALGORITHMS) {
                for (String set : extraSets) cases.add(new Case(algorithm, "fp32", set));
            }
            return cases;
        }
    }

    /** Per-iteration seconds per step, by side and case key, gathered over the rounds. */
    static final class Samples {
        final Map<String, List<Double>> seconds = new HashMap<>();

        void add(String side, String key, double secondsPerStep) {
            seconds.computeIfAbsent(side + " " + key, k -> new ArrayList<>()).add(secondsPerStep);
        }

        /** The median, or NaN when nothing was measured. */
        double median(String side, String key) {
            return CpuReport.median(seconds.getOrDefault(side + " " + key, List.of()));
        }
    }

    static final String OURS = "ours", SAME_TRAFFIC = "same-traffic", TORCH_FOREACH = "torch-foreach",
            TORCH_FOR_LOOP = "torch-for-loop", ND4J = "nd4j", COPY = "copy";

    public static void main(String[] args) throws RunnerException, IOException, InterruptedException {
        Plan plan;
        try {
            plan = Plan.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        boolean nd4j = plan.nd4jWanted() && nd4jOnClasspath();
        if (plan.nd4jWanted() && !nd4j) {
            System.err.println("ND4J is not on the classpath (build with the nd4j Maven profile) or pass --no-nd4j; stopping");
            System.exit(2);
        }
        List<Case> cases = plan.cases();
        Samples samples = new Samples();
        String[] torchMeta = {"not measured", "n/a"};
        LocalDateTime started = LocalDateTime.now().truncatedTo(ChronoUnit.SECONDS);
        List<String> problems = new ArrayList<>();
        for (int round = 1; round <= plan.rounds(); round++) {
            System.out.println("== round " + round + " of " + plan.rounds() + ": fusedopt" + (nd4j ? " and ND4J" : ""));
            measureOurs(plan, cases, nd4j, samples);
            if (plan.torch()) {
                System.out.println("== round " + round + " of " + plan.rounds() + ": torch.optim");
                try {
                    torchMeta = measureTorch(plan, cases, samples);
                } catch (IOException e) {
                    // What this round measured stays; the rows it missed say "PyTorch not measured".
                    System.err.println("round " + round + ": " + e.getMessage());
                    problems.add("round " + round + ": " + e.getMessage());
                }
            }
        }
        List<Row> rows = rows(cases, samples);
        String fast;
        try (DeviceOptimizer probe = DeviceOptimizer.create(Backend.CPU_FAST, StepBenchmark.config("sgd"))) {
            fast = probe.deviceDescription(); // this JVM has the Vector API module too (cpu-report.sh adds it)
        }
        Map<String, String> run = new java.util.LinkedHashMap<>();
        run.put("date", started.toString());
        run.put("command", plan.command());
        run.put("jdk", System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ", "
                + System.getProperty("java.home") + ")");
        run.put("machine", machine());
        run.put("fast backend", fast);
        run.put("same-traffic kernel", "Vector API " + SameTrafficKernel.FLOATS.vectorBitSize() + "-bit, Java arrays, "
                + "2^16-element chunks on every available processor");
        run.put("torch", !plan.torch() ? "not measured (--no-torch)"
                : "torch " + torchMeta[0] + ", torch.set_num_threads(" + torchMeta[1] + "), " + plan.python());
        run.put("nd4j", nd4j ? "ND4J 1.0.0-M2.1 (nd4j profile)" : "not measured (--no-nd4j)");
        run.put("copy, every core", gbs(8.0 * plan.copyFloats() / samples.median(COPY, "threads=0")) + " GB/s");
        run.put("copy, one core", gbs(8.0 * plan.copyFloats() / samples.median(COPY, "threads=1")) + " GB/s");
        run.put("timing", plan.rounds() + " rounds alternating fusedopt and torch.optim; per case and round "
                + plan.warmupIterations() + " warm-up and " + plan.iterations() + " measured iterations of "
                + plan.iterationMillis() + " ms (JMH, one fork each; the same scheme in torch_optim.py); median over all"
                + " measured iterations");
        run.put("duration", java.time.Duration.between(started, LocalDateTime.now()).toMinutes() + " minutes");
        if (!problems.isEmpty()) run.put("problems", String.join("; ", problems));
        double copyGBs = 8.0 * plan.copyFloats() / samples.median(COPY, "threads=0") / 1e9;
        Files.createDirectories(plan.out());
        String stem = LocalDate.now() + "-cpu-jdk" + Runtime.version().feature() + (plan.quick() ? "-quick" : "");
        String md = markdown(run, rows, copyGBs);
        Files.writeString(plan.out().resolve(stem + ".md"), md);
        Files.writeString(plan.out().resolve(stem + ".json"), json(run, rows, copyGBs));
        System.out.println(md);
        System.out.println("wrote " + plan.out().resolve(stem + ".md") + " and .json");
    }

    private static boolean nd4jOnClasspath() {
        try {
            Class.forName(ND4J_BENCHMARK, false, CpuReport.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    /** One round of our side: the copy, then each group of cases JMH can run as one parameter product. */
    private static void measureOurs(Plan plan, List<Case> cases, boolean nd4j, Samples samples) throws RunnerException {
        for (RunResult r : jmh(plan, options(plan).include(only(HostCopyBenchmark.class, "copy"))
                .param("floats", Long.toString(plan.copyFloats())).param("threads", "0", "1"))) {
            addIterations(samples, COPY, "threads=" + r.getParams().getParam("threads"), r);
        }
        for (List<Case> group : jmhGroups(cases)) {
            Set<String> algorithms = new LinkedHashSet<>(), sizes = new LinkedHashSet<>();
            for (Case c : group) {
                algorithms.add(c.algorithm());
                sizes.add(c.set().equals(TRANSFORMER) ? "0" : c.set().substring("one:".length()));
            }
            Case first = group.get(0);
            ChainedOptionsBuilder o = options(plan)
                    .include(only(StepBenchmark.class, "step")).include(only(SameTrafficBenchmark.class, "step"))
                    .param("backend", "CPU_FAST").param("threads", "0")
                    .param("algorithm", algorithms.toArray(new String[0])).param("storage", first.storage())
                    .param("tensorSet", first.set().equals(TRANSFORMER) ? TRANSFORMER : "one")
                    .param("size", sizes.toArray(new String[0]));
            for (RunResult r : jmh(plan, o)) {
                String side = r.getParams().getBenchmark().endsWith("SameTrafficBenchmark.step") ? SAME_TRAFFIC : OURS;
                addIterations(samples, side, caseOf(r).key(), r);
            }
        }
        if (nd4j) {
            Set<String> algorithms = new LinkedHashSet<>(), sizes = new LinkedHashSet<>();
            for (Case c : cases) {
                if (ND4J_ALGORITHMS.contains(c.algorithm()) && c.storage().equals("fp32") && !c.set().equals(TRANSFORMER)) {
                    algorithms.add(c.algorithm());
                    sizes.add(c.set().substring("one:".length()));
                }
            }
            if (!algorithms.isEmpty()) {
                ChainedOptionsBuilder o = options(plan).include("^" + Pattern.quote(ND4J_BENCHMARK) + "\\.step$")
                        .param("algorithm", algorithms.toArray(new String[0])).param("size", sizes.toArray(new String[0]));
                for (RunResult r : jmh(plan, o)) {
                    String key = new Case(r.getParams().getParam("algorithm"), "fp32", "one:" + r.getParams().getParam("size")).key();
                    addIterations(samples, ND4J, key, r);
                }
            }
        }
    }

    /**
     * The cases cut into groups that one JMH run each measures: the algorithms measured at the same
     * sizes in the same storage and set kind. JMH runs the product of the parameter values, which
     * for such a group is exactly its cases (no product measures a case the plan does not have).
     */
    static List<List<Case>> jmhGroups(List<Case> cases) {
        Map<String, List<String>> sizesOf = new java.util.LinkedHashMap<>();
        for (Case c : cases) {
            String kind = c.set().equals(TRANSFORMER) ? TRANSFORMER : "one";
            sizesOf.computeIfAbsent(c.algorithm() + "/" + c.storage() + "/" + kind, k -> new ArrayList<>())
                    .add(kind.equals(TRANSFORMER) ? "0" : c.set().substring("one:".length()));
        }
        Map<String, List<Case>> groups = new java.util.LinkedHashMap<>();
        for (Case c : cases) {
            String kind = c.set().equals(TRANSFORMER) ? TRANSFORMER : "one";
            groups.computeIfAbsent(c.storage() + "/" + kind + "/" + sizesOf.get(c.algorithm() + "/" + c.storage() + "/" + kind),
                    k -> new ArrayList<>()).add(c);
        }
        return new ArrayList<>(groups.values());
    }

    private static ChainedOptionsBuilder options(Plan plan) {
        // A failed case is reported as not measured rather than ending a 25-minute run.
        // The 168.6M-element sets hold up to 2.7 GB of operands (direct memory, whose limit is the
        // heap's, or Java arrays): the forks may take 60% of the memory. These arguments replace the
        // benchmarks' own, so the Vector API module is named again.
        return new OptionsBuilder().forks(1).shouldFailOnError(false)
                .jvmArgsAppend("--add-modules=jdk.incubator.vector", "-XX:MaxRAMPercentage=60")
                .warmupIterations(plan.warmupIterations()).warmupTime(TimeValue.milliseconds(plan.warmupMillis()))
                .measurementIterations(plan.iterations()).measurementTime(TimeValue.milliseconds(plan.iterationMillis()));
    }

    /**
     * Runs JMH; while another JMH run on this machine holds its lock (/tmp/jmh.lock), waits for it
     * rather than measuring beside it or giving up a long run.
     */
    private static Collection<RunResult> jmh(Plan plan, ChainedOptionsBuilder options) throws RunnerException {
        for (int waited = 0; ; waited += 10) {
            try {
                return new Runner(options.build()).run();
            } catch (RunnerException e) {
                if (e.getMessage() == null || !e.getMessage().contains("Unable to acquire the JMH lock")) throw e;
                System.out.println("another JMH run holds /tmp/jmh.lock; waiting (" + waited + " s so far)");
                try {
                    Thread.sleep(10_000);
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
    }

    /** A JMH include pattern for exactly one benchmark method (a bare class name would also match HostCopyBenchmark for CopyBenchmark). */
    private static String only(Class<?> benchmark, String method) {
        return "^" + Pattern.quote(benchmark.getName()) + "\\." + method + "$";
    }

    private static Case caseOf(RunResult r) {
        String set = r.getParams().getParam("tensorSet");
        return new Case(r.getParams().getParam("algorithm"), r.getParams().getParam("storage"),
                set.equals(TRANSFORMER) ? TRANSFORMER : "one:" + r.getParams().getParam("size"));
    }

    /** Every measured iteration of a JMH result (AverageTime in microseconds per step) as seconds per step. */
    private static void addIterations(Samples samples, String side, String key, RunResult r) {
        for (BenchmarkResult b : r.getBenchmarkResults()) {
            for (IterationResult i : b.getIterationResults()) samples.add(side, key, i.getPrimaryResult().getScore() * 1e-6);
        }
    }

    /** One round of torch.optim over the fp32 cases (PyTorch has no bf16-with-fp32-master optimizer step); returns version and threads. */
    private static String[] measureTorch(Plan plan, List<Case> cases, Samples samples) throws IOException, InterruptedException {
        Path caseFile = Files.createTempFile("torch-cases", ".tsv");
        Path optimizerFile = Files.createTempFile("torch-optimizers", ".json");
        try {
            StringBuilder lines = new StringBuilder();
            Set<String> algorithms = new LinkedHashSet<>();
            for (Case c : cases) {
                if (!c.storage().equals("fp32")) continue;
                StringJoiner lengths = new StringJoiner(",");
                for (long n : c.lengths()) lengths.add(Long.toString(n));
                lines.append(c.algorithm()).append('\t').append(c.set()).append('\t').append(lengths).append('\n');
                algorithms.add(c.algorithm());
            }
            Files.writeString(caseFile, lines);
            TorchOptimizers.write(optimizerFile, algorithms);
            List<String> command = List.of(plan.python(), "benchmarks/torch_optim.py", "--cases", caseFile.toString(),
                    "--optimizers", optimizerFile.toString(),
                    "--threads", Integer.toString(Runtime.getRuntime().availableProcessors()),
                    "--warmup", Integer.toString(plan.warmupIterations()), "--warmup-time", seconds(plan.warmupMillis()),
                    "--iterations", Integer.toString(plan.iterations()), "--time", seconds(plan.iterationMillis()));
            Process process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            String[] meta = null;
            try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = out.readLine()) != null; ) {
                    System.out.println(line);
                    String[] parsed = parseTorchLine(line, samples);
                    if (parsed != null) meta = parsed;
                }
            }
            int exit = process.waitFor();
            if (exit != 0 || meta == null) {
                throw new IOException("torch_optim.py failed (exit " + exit + "): " + String.join(" ", command));
            }
            return meta;
        } finally {
            Files.deleteIfExists(caseFile);
            Files.deleteIfExists(optimizerFile);
        }
    }

    private static String seconds(int millis) {
        return String.format(Locale.ROOT, "%.3f", millis / 1000.0);
    }

    /**
     * Reads one line of torch_optim.py's output: a RESULT line becomes a sample, a META line is
     * returned as {version, threads}; anything else is passed over (returns null).
     *
     * @throws IllegalArgumentException for a RESULT or META line of the wrong shape
     */
    static String[] parseTorchLine(String line, Samples samples) {
        String[] f = line.split("\t", -1);
        if (f[0].equals("META")) {
            if (f.length != 3) throw new IllegalArgumentException("torch META line needs version and threads: '" + line + "'");
            return new String[] {f[1], f[2]};
        }
        if (!f[0].equals("RESULT")) return null;
        if (f.length != 5 || !(f[3].equals("true") || f[3].equals("false"))) {
            throw new IllegalArgumentException("torch RESULT line needs algorithm, set, foreach (true|false), seconds: '" + line + "'");
        }
        double s;
        try {
            s = Double.parseDouble(f[4]);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("torch RESULT line has no number of seconds: '" + line + "'");
        }
        if (!(s > 0) || Double.isInfinite(s)) throw new IllegalArgumentException("torch RESULT seconds must be positive: '" + line + "'");
        samples.add(f[3].equals("true") ? TORCH_FOREACH : TORCH_FOR_LOOP, new Case(f[1], "fp32", f[2]).key(), s);
        return null;
    }

    static double median(List<Double> values) {
        if (values.isEmpty()) return Double.NaN;
        double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int m = v.length / 2;
        return v.length % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
    }

    /**
     * A finished row: medians (seconds per step, NaN where not measured) and the targets it misses;
     * {@code float32States}: an 8-bit row's case with float32 states (NaN for other rows).
     */
    record Row(Case c, double ours, double sameTraffic, double torchForeach, double torchForLoop, double nd4j,
               double oneTensorOfSameTotal, double float32States, List<String> unmet) {

        double sameTrafficFraction() {
            return sameTraffic / ours;
        }

        double gbPerSecond() {
            return c.bytesPerStep() / ours / 1e9;
        }

        /** Over the faster of PyTorch's two modes. */
        double speedUp() {
            double best = Double.isNaN(torchForeach) ? torchForLoop
                    : Double.isNaN(torchForLoop) ? torchForeach : Math.min(torchForeach, torchForLoop);
            return best / ours;
        }
    }

    static List<Row> rows(List<Case> cases, Samples samples) {
        long total = TensorSets.total(TensorSets.transformer());
        List<Row> rows = new ArrayList<>();
        for (Case c : cases) {
            String k = c.key();
            double oneOfSameTotal = c.set().equals(TRANSFORMER)
                    ? samples.median(OURS, new Case(c.algorithm(), c.storage(), "one:" + total).key()) : Double.NaN;
            double float32States = c.storage().equals(QUANTIZED_STORAGE)
                    ? samples.median(OURS, new Case(c.algorithm(), "fp32", c.set()).key()) : Double.NaN;
            Row draft = new Row(c, samples.median(OURS, k), samples.median(SAME_TRAFFIC, k), samples.median(TORCH_FOREACH, k),
                    samples.median(TORCH_FOR_LOOP, k), samples.median(ND4J, k), oneOfSameTotal, float32States, List.of());
            rows.add(new Row(c, draft.ours(), draft.sameTraffic(), draft.torchForeach(), draft.torchForLoop(), draft.nd4j(),
                    oneOfSameTotal, float32States, unmetTargets(draft)));
        }
        return rows;
    }

    /** The targets a row misses, in words; a target whose inputs were not measured is named as such. */
    static List<String> unmetTargets(Row r) {
        List<String> unmet = new ArrayList<>();
        if (Double.isNaN(r.ours())) {
            unmet.add("fusedopt not measured");
            return unmet;
        }
        boolean quantized = r.c().storage().equals(QUANTIZED_STORAGE);
        double sameTrafficTarget = quantized ? QUANTIZED_SAME_TRAFFIC_TARGET : SAME_TRAFFIC_TARGET;
        if (Double.isNaN(r.sameTraffic())) unmet.add("same-traffic not measured");
        else if (r.sameTrafficFraction() < sameTrafficTarget) unmet.add(String.format(Locale.ROOT, "< %.0f%% of same-traffic",
                100 * sameTrafficTarget));
        if (quantized) {
            if (Double.isNaN(r.float32States())) unmet.add("float32 states not measured");
            else if (r.ours() >= r.float32States()) {
                unmet.add(String.format(Locale.ROOT, "%.2fx the time of float32 states", r.ours() / r.float32States()));
            }
        }
        boolean hasTorch = r.c().storage().equals("fp32");
        if (hasTorch) {
            double speedUp = r.speedUp();
            if (Double.isNaN(speedUp)) unmet.add("PyTorch not measured");
            else if (speedUp < PYTORCH_TARGET) unmet.add(String.format(Locale.ROOT, "< %.1fx PyTorch", PYTORCH_TARGET));
            else if (THREE_X.contains(r.c().algorithm()) && speedUp < PYTORCH_TARGET_HEAVY) {
                unmet.add(String.format(Locale.ROOT, "< %.0fx PyTorch", PYTORCH_TARGET_HEAVY));
            }
        }
        if (r.c().set().equals(TRANSFORMER)) {
            if (Double.isNaN(r.oneTensorOfSameTotal())) unmet.add("one tensor of the same total not measured");
            else if (r.ours() > (1 + MANY_TENSOR_TOLERANCE) * r.oneTensorOfSameTotal()) {
                unmet.add(String.format(Locale.ROOT, "581 tensors %+.0f%% vs one tensor (> %.0f%%)",
                        100 * (r.ours() / r.oneTensorOfSameTotal() - 1), 100 * MANY_TENSOR_TOLERANCE));
            }
        }
        return unmet;
    }

    static String label(Case c) {
        String set = c.set().equals(TRANSFORMER) ? "581 tensors (" + elementsText(c.elements()) + ")"
                : "one " + elementsText(c.elements());
        return set;
    }

    private static String elementsText(long n) {
        return Long.bitCount(n) == 1 ? "2^" + Long.numberOfTrailingZeros(n) : String.format(Locale.ROOT, "%.1fM", n / 1e6);
    }

    static String algorithmName(String algorithm) {
        return switch (algorithm) {
            case "momentum" -> "Nesterov 0.9";
            case "heavy-ball" -> "momentum 0.9";
            case "sgd" -> "SGD";
            case "adam" -> "Adam";
            case "adamw" -> "AdamW";
            case "amsgrad" -> "AMSGrad";
            case "rmsprop" -> "RMSProp";
            case "rmsprop-centered-momentum" -> "RMSProp centered, momentum 0.9";
            case "adagrad" -> "Adagrad";
            default -> algorithm;
        };
    }

    static String markdown(Map<String, String> run, List<Row> rows, double copyGBs) {
        StringBuilder md = new StringBuilder("# CPU_FAST beside its same-traffic roofline and torch.optim\n\n");
        run.forEach((k, v) -> md.append("- ").append(k).append(": ").append(v).append('\n'));
        long met = rows.stream().filter(r -> r.unmet().isEmpty()).count();
        md.append(String.format(Locale.ROOT, "%nTargets: >= %.0f%% of the same-traffic kernel; >= %.1fx the faster PyTorch mode"
                        + " on every fp32 row; >= %.0fx on Adam, AdamW, RMSProp and Adagrad; 581 tensors within %.0f%% of"
                        + " one tensor of the same total; 8-bit states (%s): >= %.0f%% of their own same-traffic kernel and"
                        + " faster than float32 states. **%d of %d rows meet every target**; the last column names what a"
                        + " row misses.%n%n", 100 * SAME_TRAFFIC_TARGET, PYTORCH_TARGET, PYTORCH_TARGET_HEAVY,
                100 * MANY_TENSOR_TOLERANCE, QUANTIZED_STORAGE, 100 * QUANTIZED_SAME_TRAFFIC_TARGET, met, rows.size()))
                .append("Same-traffic: a kernel that reads and writes the same arrays as the update (same lengths,"
                        + " threads and 2^16-element chunks), one add per element; fraction = its time / ours. GB/s counts"
                        + " the bytes the update must move (B/param). Copy: the all-core copy bandwidth of the same run,"
                        + " context only. Speed-up: the faster PyTorch mode / ours. PyTorch has no bf16-with-master"
                        + " step: n/a.\n\n")
                .append("| algorithm | storage | tensors | B/param | ours | same-traffic | of same-traffic | GB/s"
                        + " | of copy | PyTorch foreach=True | PyTorch foreach=False | speed-up | ND4J | targets |\n")
                .append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            md.append("| ").append(algorithmName(r.c().algorithm())).append(" | ").append(r.c().storage()).append(" | ")
                    .append(label(r.c())).append(" | ").append(bytesPerParam(r.c())).append(" | ")
                    .append(time(r.ours())).append(" | ").append(time(r.sameTraffic())).append(" | ")
                    .append(percent(r.sameTrafficFraction())).append(" | ").append(number("%.1f", r.gbPerSecond())).append(" | ")
                    .append(percent(r.gbPerSecond() / copyGBs)).append(" | ").append(time(r.torchForeach())).append(" | ")
                    .append(time(r.torchForLoop())).append(" | ").append(number("%.2fx", r.speedUp())).append(" | ")
                    .append(time(r.nd4j())).append(" | ")
                    .append(r.unmet().isEmpty() ? "met" : "**UNMET**: " + String.join("; ", r.unmet())).append(" |\n");
        }
        return md.toString();
    }

    /**
     * The run and its rows as one JSON document (the project's JDK-only writer); a figure that was
     * not measured is left out of its row rather than written as a number.
     */
    static String json(Map<String, String> run, List<Row> rows, double copyGBs) {
        Json.Writer w = new Json.Writer(true).beginObject().name("run").beginObject();
        run.forEach((k, v) -> w.name(k).value(v));
        number(w, "copy_gb_per_s", copyGBs);
        w.endObject().name("rows").beginArray();
        for (Row r : rows) {
            w.beginObject().name("algorithm").value(r.c().algorithm()).name("storage").value(r.c().storage())
                    .name("tensor_set").value(r.c().set()).name("tensors").value(r.c().lengths().length)
                    .name("elements").value(r.c().elements()).name("bytes_per_step").value(r.c().bytesPerStep());
            number(w, "seconds_per_step", r.ours());
            number(w, "same_traffic_seconds", r.sameTraffic());
            number(w, "same_traffic_fraction", r.sameTrafficFraction());
            number(w, "gb_per_s", r.gbPerSecond());
            number(w, "copy_fraction", r.gbPerSecond() / copyGBs);
            number(w, "pytorch_foreach_seconds", r.torchForeach());
            number(w, "pytorch_for_loop_seconds", r.torchForLoop());
            number(w, "speed_up_vs_pytorch", r.speedUp());
            number(w, "nd4j_seconds", r.nd4j());
            number(w, "one_tensor_of_same_total_seconds", r.oneTensorOfSameTotal());
            number(w, "float32_states_seconds", r.float32States());
            w.name("unmet_targets").beginArray();
            r.unmet().forEach(w::value);
            w.endArray().endObject();
        }
        return w.endArray().endObject() + "\n";
    }

    private static void number(Json.Writer w, String name, double v) {
        if (Double.isFinite(v)) w.name(name).value(v);
    }

    /** Bytes per param: whole for float states, two decimals where 8-bit states' absmax make a fraction (16.06). */
    static String bytesPerParam(Case c) {
        long bytes = c.bytesPerStep();
        return bytes % c.elements() == 0 ? Long.toString(bytes / c.elements())
                : String.format(Locale.ROOT, "%.2f", bytes / (double) c.elements());
    }

    private static String time(double seconds) {
        if (Double.isNaN(seconds)) return "n/a";
        return seconds >= 1e-3 ? String.format(Locale.ROOT, "%.2f ms", seconds * 1e3) : String.format(Locale.ROOT, "%.1f us", seconds * 1e6);
    }

    private static String percent(double fraction) {
        return Double.isFinite(fraction) ? String.format(Locale.ROOT, "%.0f%%", 100 * fraction) : "n/a";
    }

    private static String number(String format, double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, format, v) : "n/a";
    }

    private static String gbs(double bytesPerSecond) {
        return number("%.1f", bytesPerSecond / 1e9);
    }

    static String machine() {
        String cpu = "unknown CPU", memory = "";
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    cpu = line.substring(line.indexOf(':') + 1).trim();
                    break;
                }
            }
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    memory = String.format(Locale.ROOT, ", %.0f GiB memory",
                            Long.parseLong(line.replaceAll("[^0-9]", "")) / (1024.0 * 1024.0));
                    break;
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux: the processor count and architecture below still say something
        }
        return cpu + ", " + Runtime.getRuntime().availableProcessors() + " cores" + memory + ", "
                + System.getProperty("os.name") + " " + System.getProperty("os.arch");
    }
}
