package io.fusedopt.bench;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.Precision;
import io.fusedopt.StepGraph;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cuda.CudaProbe;
import io.fusedopt.cuda.DeviceCopy;
import io.fusedopt.cuda.DeviceSameTraffic;
import io.fusedopt.internal.Json;
import io.fusedopt.internal.UpdatePlan;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.function.Supplier;

/**
 * fusedopt's side of the GPU-evidence run (benchmarks/gpu/evidence.sh), in two parts, each its own
 * JVM so that the script can time-box them:
 *
 * <ul>
 *   <li>{@code bench}: the device copy (the roofline of the copy engine), the same-traffic kernel of
 *       every update's traffic ({@link DeviceSameTraffic}), and the step of every algorithm in
 *       {@link #ALGORITHMS} with fp32 params and with bf16 params plus fp32 master weights, over one
 *       large tensor and the transformer-shaped set, then over the tiny-tensor set in fp32, replayed
 *       from a captured graph and called step by step. It writes {@code cases.tsv}, the cases
 *       PyTorch's side (benchmarks/gpu/torch_side_by_side.py) runs with the same lengths, and
 *       {@code torch-optimizers.json} ({@link TorchOptimizers}), the torch.optim settings of each algorithm.
 *   <li>{@code agree}: every algorithm for 20 steps (the rate halved from step 11) on CUDA and on the
 *       CPU reference from inputs both languages compute from one formula ({@link #initialParam},
 *       {@link #gradient}); it says whether CUDA equals the reference bit for bit and writes the
 *       final params for PyTorch's side to compare with ({@code agreement.tsv}: algorithm, file,
 *       lengths, steps, the step from which the rate is halved).
 * </ul>
 *
 * <p>Timing: warm-up steps, then repetitions of {@code k} steps followed by one synchronize,
 * {@code k} chosen so that a repetition lasts about {@link Sizes#repetitionSeconds}; a row's figure
 * is the median of the repetitions' mean step times (wall clock, so launch overhead counts, as a
 * caller sees it). Results go to {@code fusedopt.jsonl} in the output folder, one JSON object a line,
 * written as each case ends, so a time box that ends the run keeps what was measured. A case that
 * fails is recorded with its error and the run goes on. Cases not started before the deadline are
 * recorded as such.
 *
 * <p>{@code --rehearsal}: small sizes, and the CUDA emulator allowed; it proves the plumbing, and its
 * figures mean nothing (each row says so).
 *
 * <pre>
 * java -cp ... io.fusedopt.bench.GpuEvidence bench|agree --out DIR [--rehearsal] [--deadline-seconds S]
 * </pre>
 */
public final class GpuEvidence {
    /** The algorithms of the evidence run, named as {@link StepBenchmark#config} and benchmarks/torch_optim.py name them. */
    static final List<String> ALGORITHMS = List.of("adam", "adamw", "amsgrad", "rmsprop", "rmsprop-centered-momentum",
            "momentum", "heavy-ball", "sgd", "adagrad");
    /**
     * The storage classes: "fp32"; "bf16-master", bf16 params and grads with fp32 master weights
     * and states; "bf16", bf16 params, grads and states without master weights, the traffic of
     * PyTorch's bf16 rows (its optimizers keep no master weights), so the like-for-like comparison.
     */
    static final List<String> STORAGES = List.of("fp32", "bf16-master", "bf16");
    /** The storage classes the same-traffic kernel has (fp32 states only). */
    static final List<String> TRAFFIC_STORAGES = List.of("fp32", "bf16-master");
    /** PyTorch's storage classes: fp32, and bf16 throughout, the peer of both bf16 rows of ours. */
    static final List<String> TORCH_STORAGES = List.of("fp32", "bf16");
    /** Agreement run: steps, and the step from which the rate is halved. */
    static final int AGREEMENT_STEPS = 20;
    static final int RATE_CHANGE_STEP = 11;
    /** Agreement run: tensor lengths (several tensors, one not a multiple of any vector width). */
    static final long[] AGREEMENT_LENGTHS = {1000, 3001};

    /** The sizes of a run: the on a GPU, small ones for a rehearsal on the emulator. */
    record Sizes(long one, long[] transformer, long[] tiny, double repetitionSeconds, int repetitions) {
        static Sizes full() {
            return new Sizes(1L << 28, TensorSets.transformer(), TensorSets.tiny(1000), 0.02, 5);
        }

        static Sizes rehearsal() {
            return new Sizes(4099, TensorSets.transformer(8, 2, 64, 16), TensorSets.tiny(20), 0.001, 3);
        }

        long[] set(String name) {
            return switch (name) {
                case "one" -> TensorSets.one(one);
                case "transformer" -> transformer;
                case "tiny" -> tiny;
                default -> throw new IllegalArgumentException("unknown tensor set " + name);
            };
        }
    }

    private final Path out;
    private final boolean rehearsal;
    private final Sizes sizes;
    private final long startNanos = System.nanoTime();
    /** Cases start only while less than this has passed since the start. */
    private final long budgetNanos;
    private final Writer results;
    private final PrintStream log = System.out;

    private GpuEvidence(Path out, boolean rehearsal, double deadlineSeconds) throws IOException {
        this.out = out;
        this.rehearsal = rehearsal;
        this.sizes = rehearsal ? Sizes.rehearsal() : Sizes.full();
        this.budgetNanos = (long) Math.min(Long.MAX_VALUE, deadlineSeconds * 1e9);
        Files.createDirectories(out);
        this.results = Files.newBufferedWriter(out.resolve("fusedopt.jsonl"), StandardCharsets.UTF_8,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
    }

    public static void main(String[] args) throws IOException {
        List<String> a = List.of(args);
        if (args.length < 1 || !Set.of("bench", "agree").contains(args[0]) || !a.contains("--out")) {
            System.err.println("usage: GpuEvidence bench|agree --out DIR [--rehearsal] [--deadline-seconds S]");
            System.exit(2);
        }
        boolean rehearsal = a.contains("--rehearsal");
        if (CudaProbe.result().emulator() && !rehearsal) {
            System.err.println(CudaProbe.EMULATOR_BENCHMARK_REFUSAL + " (--rehearsal checks the plumbing there)");
            System.exit(1);
        }
        if (!CudaProbe.result().available()) {
            System.err.println("GpuEvidence: CUDA is unavailable: " + CudaProbe.result().reason());
            System.exit(1);
        }
        Path out = Path.of(a.get(a.indexOf("--out") + 1));
        int deadline = a.indexOf("--deadline-seconds");
        double seconds = deadline >= 0 ? Double.parseDouble(a.get(deadline + 1)) : Double.POSITIVE_INFINITY;
        GpuEvidence evidence = new GpuEvidence(out, rehearsal, seconds);
        try (Writer results = evidence.results) {
            evidence.meta(args[0]);
            if (args[0].equals("bench")) evidence.bench();
            else evidence.agree();
        }
    }

    // ---- bench ----

    private void bench() throws IOException {
        writeTorchCases();
        run("copy", "", "", "one", () -> {
            try (DeviceCopy copy = new DeviceCopy(0, 4L * sizes.one())) {
                return measured(time(copy::copy, copy::synchronize), copy.bytesMoved(), 1, sizes.one());
            }
        });
        for (String set : List.of("one", "transformer")) {
            long elements = TensorSets.total(sizes.set(set));
            Set<String> done = new LinkedHashSet<>();
            for (String algorithm : ALGORITHMS) {
                for (String storage : TRAFFIC_STORAGES) {
                    int states = UpdatePlan.of(StepBenchmark.config(algorithm)).usedSlots();
                    boolean master = !storage.equals("fp32");
                    if (!done.add(states + "/" + master)) continue;   // one row per distinct traffic
                    run("same-traffic", "states:" + states, storage, set, () -> {
                        try (DeviceSameTraffic traffic = new DeviceSameTraffic(0, elements, states, master)) {
                            return measured(time(traffic::run, traffic::synchronize), traffic.bytesMoved(), 1, elements);
                        }
                    });
                }
            }
            for (String algorithm : ALGORITHMS) {
                for (String storage : STORAGES) {
                    run("step", algorithm, storage, set, () -> step(algorithm, storage, sizes.set(set), false));
                }
            }
        }
        for (String algorithm : ALGORITHMS) {
            for (boolean graph : new boolean[] {true, false}) {
                run(graph ? "graph" : "step", algorithm, "fp32", "tiny", () -> step(algorithm, "fp32", sizes.tiny(), graph));
            }
        }
    }

    /** One algorithm's step over a tensor set: called, or replayed from a captured graph. */
    private String step(String algorithm, String storage, long[] lengths, boolean graph) {
        boolean pureBf16 = storage.equals("bf16");
        Precision precision = pureBf16 ? Precision.BF16 : StepBenchmark.paramPrecision(storage);
        Precision states = pureBf16 ? Precision.BF16 : Precision.FP32;
        boolean master = precision != Precision.FP32 && !pureBf16;
        try (DeviceOptimizer optimizer = DeviceOptimizer.builder(StepBenchmark.config(algorithm)).optBackend(Backend.CUDA)
                .optStatePrecision(states).optMasterWeights(master).build()) {
            StepBenchmark.addTensors(optimizer, lengths, precision);
            long elements = TensorSets.total(lengths);
            long bytes = (long) UpdatePlan.of(StepBenchmark.config(algorithm))
                    .bytesPerElement(precision, precision, states, master) * elements;
            if (!graph) return measured(time(optimizer::step, optimizer::synchronize), bytes, lengths.length, elements);
            try (StepGraph captured = optimizer.captureStep()) {
                return measured(time(captured::replay, optimizer::synchronize), bytes, lengths.length, elements);
            }
        }
    }

    /** PyTorch's cases: the same algorithms, storage classes and tensor lengths. */
    private void writeTorchCases() throws IOException {
        StringBuilder cases = new StringBuilder();
        for (String set : List.of("one", "transformer", "tiny")) {
            for (String algorithm : ALGORITHMS) {
                for (String storage : set.equals("tiny") ? List.of("fp32") : TORCH_STORAGES) {
                    cases.append(algorithm).append('\t').append(storage).append('\t').append(set).append('\t');
                    long[] lengths = sizes.set(set);
                    for (int t = 0; t < lengths.length; t++) cases.append(t == 0 ? "" : ",").append(lengths[t]);
                    cases.append('\n');
                }
            }
        }
        Files.writeString(out.resolve("cases.tsv"), cases);
        TorchOptimizers.write(out.resolve(TorchOptimizers.FILE), ALGORITHMS);
    }

    // ---- agree ----

    private void agree() throws IOException {
        StringBuilder cases = new StringBuilder();
        for (String algorithm : ALGORITHMS) {
            run("agreement", algorithm, "fp32", "agreement", () -> {
                float[] cuda = trajectory(Backend.CUDA, algorithm);
                float[] reference = trajectory(Backend.CPU, algorithm);
                int differing = 0;
                for (int i = 0; i < cuda.length; i++) {
                    if (Float.floatToRawIntBits(cuda[i]) != Float.floatToRawIntBits(reference[i])) differing++;
                }
                try {
                    writeFloats(out.resolve("agree-" + algorithm + ".f32"), cuda);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                return "\"elements\":" + cuda.length + ",\"steps\":" + AGREEMENT_STEPS + ",\"rate_change_step\":" + RATE_CHANGE_STEP
                        + ",\"cuda_equals_cpu_reference\":" + (differing == 0) + ",\"elements_differing_from_reference\":" + differing;
            });
            cases.append(algorithm).append('\t').append("agree-").append(algorithm).append(".f32\t");
            for (int t = 0; t < AGREEMENT_LENGTHS.length; t++) cases.append(t == 0 ? "" : ",").append(AGREEMENT_LENGTHS[t]);
            cases.append('\t').append(AGREEMENT_STEPS).append('\t').append(RATE_CHANGE_STEP).append('\n');
        }
        Files.writeString(out.resolve("agreement.tsv"), cases);
        TorchOptimizers.write(out.resolve(TorchOptimizers.FILE), ALGORITHMS); // the same table as bench's: either may run alone
    }

    /**
     * The params after {@link #AGREEMENT_STEPS} steps of {@code algorithm} on {@code backend}, the
     * rate halved before step {@link #RATE_CHANGE_STEP}, every tensor's values concatenated.
     */
    static float[] trajectory(Backend backend, String algorithm) {
        OptimizerConfig config = StepBenchmark.config(algorithm);
        try (DeviceOptimizer optimizer = DeviceOptimizer.create(backend, config)) {
            ParamGroup group = optimizer.addGroup();
            List<TensorBuffer> params = new ArrayList<>();
            List<TensorBuffer> grads = new ArrayList<>();
            long offset = 0;
            for (int t = 0; t < AGREEMENT_LENGTHS.length; t++) {
                int n = (int) AGREEMENT_LENGTHS[t];
                TensorBuffer p = optimizer.allocate(n);
                float[] values = new float[n];
                for (int i = 0; i < n; i++) values[i] = initialParam(offset + i);
                p.copyFrom(values);
                TensorBuffer g = optimizer.allocate(n);
                group.add("t" + t, p, g);
                params.add(p);
                grads.add(g);
                offset += n;
            }
            for (int step = 1; step <= AGREEMENT_STEPS; step++) {
                if (step == RATE_CHANGE_STEP) group.setLearningRate(config.learningRate() * 0.5);
                long at = 0;
                for (TensorBuffer g : grads) {
                    float[] values = new float[(int) g.length()];
                    for (int i = 0; i < values.length; i++) values[i] = gradient(at + i, step);
                    g.copyFrom(values);
                    at += values.length;
                }
                optimizer.step();
            }
            float[] result = new float[(int) offset];
            int at = 0;
            for (TensorBuffer p : params) {
                p.copyTo(0, result, at, (int) p.length());
                at += (int) p.length();
            }
            return result;
        }
    }

    /** Element {@code i}'s initial value, in [-1, 1]: integer arithmetic, one double division, one rounding (Python computes the same). */
    static float initialParam(long i) {
        return (float) ((double) ((i * 7919) % 2001 - 1000) / 1000.0);
    }

    /** Element {@code i}'s gradient at step {@code step} (from 1), in [-0.01, 0.01], computed as {@link #initialParam}. */
    static float gradient(long i, int step) {
        return (float) ((double) ((i * 104729 + step * 7919L) % 2001 - 1000) / 1000.0 * 0.01);
    }

    private static void writeFloats(Path file, float[] values) throws IOException {
        ByteBuffer bytes = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(values);
        Files.write(file, bytes.array());
    }

    // ---- timing and records ----

    /** Median-of-repetitions timing; returns the mean seconds per operation of each repetition, sorted. */
    private double[] time(Runnable operation, Runnable synchronize) {
        for (int i = 0; i < 3; i++) operation.run();
        synchronize.run();
        long start = System.nanoTime();
        operation.run();
        synchronize.run();
        double once = Math.max(1e-9, (System.nanoTime() - start) / 1e9);
        int k = (int) Math.max(1, Math.min(10_000, Math.ceil(sizes.repetitionSeconds() / once)));
        double[] perOperation = new double[sizes.repetitions()];
        for (int r = 0; r < perOperation.length; r++) {
            start = System.nanoTime();
            for (int i = 0; i < k; i++) operation.run();
            synchronize.run();
            perOperation[r] = (System.nanoTime() - start) / 1e9 / k;
        }
        Arrays.sort(perOperation);
        return perOperation;
    }

    private static String measured(double[] sortedSeconds, long bytes, int tensors, long elements) {
        double median = sortedSeconds[sortedSeconds.length / 2];
        StringBuilder s = new StringBuilder();
        s.append("\"tensors\":").append(tensors).append(",\"elements\":").append(elements).append(",\"bytes_per_step\":").append(bytes)
                .append(",\"seconds_per_step\":").append(number(median)).append(",\"gb_per_s\":").append(number(bytes / median / 1e9))
                .append(",\"repetitions\":[");
        for (int i = 0; i < sortedSeconds.length; i++) s.append(i == 0 ? "" : ",").append(number(sortedSeconds[i]));
        return s.append(']').toString();
    }

    /**
     * Runs one case and writes its record: the case's own fields, or its error, or that the deadline
     * passed before it started.
     */
    private void run(String kind, String algorithm, String storage, String set, Supplier<String> body) throws IOException {
        StringBuilder record = new StringBuilder("{");
        field(record, "side", "fusedopt").append(',');
        field(record, "kind", kind).append(',');
        field(record, "algorithm", algorithm).append(',');
        field(record, "storage", storage).append(',');
        field(record, "set", set).append(',');
        if (System.nanoTime() - startNanos > budgetNanos) {
            field(record, "error", "not run: the time box ended first");
        } else {
            long start = System.nanoTime();
            try {
                record.append(body.get());
            } catch (RuntimeException | OutOfMemoryError e) {
                field(record, "error", e.toString());
            }
            log.printf(Locale.ROOT, "%-12s %-26s %-11s %-11s %.1f s%n", kind, algorithm, storage, set, (System.nanoTime() - start) / 1e9);
        }
        results.write(record.append("}\n").toString());
        results.flush();
    }

    private void meta(String part) throws IOException {
        StringBuilder record = new StringBuilder("{");
        field(record, "side", "fusedopt").append(',');
        field(record, "kind", "meta").append(',');
        field(record, "part", part).append(',');
        field(record, "date", Instant.now().toString()).append(',');
        field(record, "device", CudaProbe.result().deviceName()).append(',');
        field(record, "probe", CudaProbe.result().reason()).append(',');
        field(record, "java", System.getProperty("java.vm.name") + " " + System.getProperty("java.version")).append(',');
        record.append("\"emulator\":").append(CudaProbe.result().emulator()).append(",\"rehearsal\":").append(rehearsal).append('}');
        results.write(record.append('\n').toString());
        results.flush();
    }

    private static StringBuilder field(StringBuilder record, String name, String value) {
        Json.quote(record, name);
        record.append(':');
        Json.quote(record, value);
        return record;
    }

    private static String number(double value) {
        return Double.isFinite(value) ? String.format(Locale.ROOT, "%.6g", value) : "null";
    }
}
