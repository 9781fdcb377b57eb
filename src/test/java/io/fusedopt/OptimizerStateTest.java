package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Safetensors;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Optimizer state in memory and partial loads, on both CPU backends and (tagged gpu) on CUDA: save
 * to a byte array or a stream and resume bit for bit; save without params; a non-strict load into
 * a model with an extra, a missing and a resized tensor; the strict load of the same refused with
 * nothing changed; damaged, truncated and overlong bytes and streams refused with nothing changed.
 */
class OptimizerStateTest {
    @TempDir
    Path dir;

    /** One tensor of a {@link Net}: its name, length, group (0 or 1) and storage format. */
    record Spec(String name, int length, int group, Precision format) {}

    static final Spec LAYER0 = new Spec("layer0/weight", 5, 0, Precision.BF16);
    static final Spec LAYER1 = new Spec("layer1/weight", 70_001, 1, Precision.FP32);
    static final Spec LAYER2 = new Spec("layer2/weight", 1, 0, Precision.FP16);
    static final List<Spec> MODEL = List.of(LAYER0, LAYER1, LAYER2);

    static final OptimizerConfig ADAM = Adam.adamW().optLearningRate(1e-2).optAmsgrad(true).build();

    /**
     * An optimizer over tensors of mixed formats in two groups, with SKIP_STEP, whose gradient at step
     * t depends only on the tensor's name and t, so that two nets with different tensor sets see the
     * same gradients for the tensors they share.
     */
    static final class Net implements AutoCloseable {
        final DeviceOptimizer opt;
        final Map<String, Parameter> params = new LinkedHashMap<>();

        Net(Backend backend, OptimizerConfig config, List<Spec> specs, long seed) {
            opt = DeviceOptimizer.builder(config).optBackend(backend).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
            ParamGroup[] groups = {opt.addGroup(), opt.addGroup(config.withLearningRate(config.learningRate() / 3))};
            Random random = new Random(seed);
            for (Spec s : specs) {
                TensorBuffer p = opt.allocate(s.length(), s.format());
                p.copyFrom(Scenario.gaussian(random, s.length(), 1f));
                params.put(s.name(), groups[s.group()].add(s.name(), p, opt.allocate(s.length(), s.format())));
            }
        }

        static float[] gradient(String name, int length, int t) {
            float[] g = Scenario.gaussian(new Random(name.hashCode() * 1_000_003L + t), length, 1f);
            if (t == 3 && name.equals(LAYER0.name())) g[0] = Float.NaN; // a skipped step in the history
            return g;
        }

        void steps(int from, int to) {
            for (int t = from; t < to; t++) {
                for (Parameter p : params.values()) p.grad().copyFrom(gradient(p.name(), (int) p.length(), t));
                if (t == 4) opt.groups().get(0).setLearningRate(opt.groups().get(0).config().learningRate() * 0.5);
                opt.step();
            }
        }

        /** Every tensor by its checkpoint name (name/param, name/master, name/state). */
        Map<String, float[]> tensors() {
            Map<String, float[]> out = new LinkedHashMap<>();
            for (Parameter p : params.values()) {
                out.put(p.name() + "/param", p.param().toArray());
                p.masterWeights().ifPresent(m -> out.put(p.name() + "/master", m.toArray()));
                for (StateKind k : p.stateKinds()) out.put(p.name() + "/" + k.stateName(), p.state(k).toArray());
            }
            return out;
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    static void assertSameTensors(Map<String, float[]> expected, Map<String, float[]> actual, String label) {
        assertEquals(expected.keySet(), actual.keySet(), label);
        expected.forEach((k, v) -> CudaEquivalenceTest.assertBitEqual(v, actual.get(k), label + ": " + k));
    }

    static Stream<Backend> hostBackends() {
        return Stream.of(Backend.CPU, Backend.CPU_FAST);
    }

    // ---- 1. save to bytes or a stream, load in a fresh optimizer, continue ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void bytesAndStreamsResumeBitForBit(Backend backend) throws IOException {
        resumesFromMemory(backend);
    }

    @Test
    @Tag("gpu")
    void bytesAndStreamsResumeBitForBitOnCuda() throws IOException {
        GpuTests.assumeGpu();
        resumesFromMemory(Backend.CUDA);
    }

    /** Saved on {@code backend} after 6 steps, loaded on it from bytes and from a stream: equal to the uninterrupted CPU run. */
    private void resumesFromMemory(Backend backend) throws IOException {
        Map<String, float[]> uninterrupted;
        try (Net reference = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            reference.steps(1, 7);
            reference.steps(7, 12);
            uninterrupted = reference.tensors();
        }
        byte[] bytes;
        try (Net a = new Net(backend, ADAM, MODEL, 1)) {
            a.steps(1, 7);
            bytes = a.opt.saveToBytes();
            ByteArrayOutputStream stream = new ByteArrayOutputStream();
            a.opt.save(stream);
            Path file = dir.resolve("opt.safetensors");
            a.opt.save(file);
            assertArrayEquals(bytes, stream.toByteArray(), "a stream gets the bytes saveToBytes returns");
            assertArrayEquals(bytes, Files.readAllBytes(file), "and those a file save writes");
        }
        for (String from : List.of("byte array", "stream")) {
            try (Net b = new Net(backend, ADAM, MODEL, 2)) { // other initial params: the load restores them
                if (from.equals("stream")) b.opt.load(new ByteArrayInputStream(bytes));
                else b.opt.load(bytes);
                assertEquals(5, b.opt.stepCount(), "6 steps, the third skipped");
                assertEquals(1, b.opt.lastStep().skippedSteps());
                b.steps(7, 12);
                assertSameTensors(uninterrupted, b.tensors(), backend + " from a " + from);
                assertEquals(10, b.opt.stepCount());
            }
        }
    }

    @Test
    void theGoldenCheckpointLoadsFromBytesAndAStreamAndSavesToTheSameBytes() throws IOException {
        byte[] golden = CheckpointFormatTest.golden();
        try (DeviceOptimizer opt = CheckpointFormatTest.model()) {
            CheckpointFormatTest.train(opt);
            assertArrayEquals(golden, opt.saveToBytes(), "saveToBytes writes the golden bytes");
        }
        try (DeviceOptimizer fromBytes = CheckpointFormatTest.model(); DeviceOptimizer fromStream = CheckpointFormatTest.model()) {
            LoadReport report = fromBytes.load(golden, LoadOptions.defaults());
            assertTrue(report.isComplete() && report.paramsIncluded(), report.toString());
            assertEquals(CheckpointFormatTest.NAMES.size() * 3 + 3, report.loaded().size(), "param, exp_avg, exp_avg_sq; 3 masters");
            fromStream.load(new ByteArrayInputStream(golden));
            assertEquals(CheckpointFormatTest.STEPS, fromBytes.stepCount());
            assertArrayEquals(golden, fromBytes.saveToBytes(), "a loaded optimizer saves what it loaded");
            assertArrayEquals(golden, fromStream.saveToBytes());
        }
    }

    // ---- 2. without params ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void aCheckpointWithoutParamsRestoresTheRestAndLeavesTheParams(Backend backend) throws IOException {
        withoutParams(backend);
    }

    @Test
    @Tag("gpu")
    void aCheckpointWithoutParamsRestoresTheRestAndLeavesTheParamsOnCuda() throws IOException {
        GpuTests.assumeGpu();
        withoutParams(Backend.CUDA);
    }

    /**
     * The model checkpoint holds the params, the optimizer's the rest: restoring both (params by the
     * caller) and continuing equals the uninterrupted run.
     */
    private void withoutParams(Backend backend) throws IOException {
        SaveOptions noParams = SaveOptions.builder().optIncludeParams(false).build();
        byte[] state;
        Map<String, float[]> modelCheckpoint = new LinkedHashMap<>();
        Map<String, float[]> uninterrupted;
        try (Net a = new Net(backend, ADAM, MODEL, 1)) {
            a.steps(1, 7);
            state = a.opt.saveToBytes(noParams);
            byte[] full = a.opt.saveToBytes();
            assertTrue(state.length < full.length, "no params: " + state.length + " < " + full.length + " bytes");
            a.params.forEach((name, p) -> modelCheckpoint.put(name, p.param().toArray()));
            a.steps(7, 12);
            uninterrupted = a.tensors();
        }
        String header = headerOf(state);
        assertTrue(header.contains("\"params_saved\":\"false\""), header);
        assertFalse(header.contains("/param\""), "no name/param tensor: " + header);
        assertTrue(header.contains("\"layer0/weight/master\""), "master weights are optimizer state: " + header);

        try (Net b = new Net(backend, ADAM, MODEL, 2)) {
            Map<String, float[]> before = b.tensors();
            LoadReport report = b.opt.load(state, LoadOptions.defaults()); // strict: complete without params
            assertFalse(report.paramsIncluded());
            assertTrue(report.isComplete(), report.toString());
            assertTrue(report.loaded().stream().noneMatch(k -> k.endsWith("/param")), report.toString());
            for (String name : b.params.keySet()) {
                CudaEquivalenceTest.assertBitEqual(before.get(name + "/param"), b.tensors().get(name + "/param"),
                        "the load leaves param " + name);
            }
            assertEquals(5, b.opt.stepCount());
            modelCheckpoint.forEach((name, values) -> b.params.get(name).param().copyFrom(values)); // the model's own restore
            b.steps(7, 12);
            assertSameTensors(uninterrupted, b.tensors(), backend + " without params");
        }
        // From a stream too.
        try (Net c = new Net(backend, ADAM, MODEL, 3)) {
            c.opt.load(new ByteArrayInputStream(state));
            assertEquals(5, c.opt.stepCount());
        }
    }

    static String headerOf(byte[] checkpoint) {
        long n = ByteBuffer.wrap(checkpoint).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        return new String(checkpoint, 8, (int) n, StandardCharsets.UTF_8);
    }

    // ---- 3. non-strict loads ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void aNonStrictLoadTakesWhatMatchesAndReportsTheRest(Backend backend) throws IOException {
        partialLoad(backend);
    }

    @Test
    @Tag("gpu")
    void aNonStrictLoadTakesWhatMatchesAndReportsTheRestOnCuda() throws IOException {
        GpuTests.assumeGpu();
        partialLoad(Backend.CUDA);
    }

    /**
     * Saved from LAYER0..2; loaded into a model without LAYER2, with an extra tensor, and with LAYER0
     * resized. The strict load refuses and changes nothing; the non-strict one loads LAYER1 (which
     * then continues exactly as in the saved run), leaves the others fresh and reports them.
     */
    private void partialLoad(Backend backend) throws IOException {
        byte[] saved;
        Map<String, float[]> atSave;
        Map<String, float[]> uninterrupted;
        try (Net a = new Net(backend, ADAM, MODEL, 1)) {
            a.steps(1, 7);
            saved = a.opt.saveToBytes();
            atSave = a.tensors();
            a.steps(7, 12);
            uninterrupted = a.tensors();
        }
        Spec extra = new Spec("head/weight", 9, 1, Precision.FP32);
        Spec resized = new Spec(LAYER0.name(), 6, 0, LAYER0.format());
        try (Net b = new Net(backend, ADAM, List.of(resized, LAYER1, extra), 2)) {
            Map<String, float[]> fresh = b.tensors();

            CheckpointException strict = assertThrows(CheckpointException.class, () -> b.opt.load(saved));
            assertTrue(strict.getMessage().contains("byte array: tensor 'layer0/weight/param' has 5 elements, this optimizer's has 6")
                    && strict.getMessage().contains("optStrict(false)"), strict.getMessage());
            assertSameTensors(fresh, b.tensors(), "a refused strict load changes nothing");
            assertEquals(0, b.opt.stepCount(), "a refused strict load changes nothing");
            CheckpointException fromStream = assertThrows(CheckpointException.class, () -> b.opt.load(new ByteArrayInputStream(saved)));
            assertTrue(fromStream.getMessage().startsWith("stream: "), fromStream.getMessage());
            assertSameTensors(fresh, b.tensors(), "a refused strict load from a stream changes nothing");

            LoadReport report = b.opt.load(saved, LoadOptions.builder().optStrict(false).build());
            List<String> states = List.of("param", "master", "exp_avg", "exp_avg_sq", "max_exp_avg_sq");
            assertEquals(keys(LAYER1.name(), states, false), report.loaded(), report.toString());
            assertEquals(keys(extra.name(), states, false), report.missing(), report.toString());
            assertEquals(keys(LAYER2.name(), states, true), report.unexpected(), report.toString());
            Map<String, String> mismatched = new LinkedHashMap<>();
            for (String key : keys(LAYER0.name(), states, true)) {
                mismatched.put(key, "has 5 elements, this optimizer's has 6 (wrong shape)");
            }
            assertEquals(mismatched, report.mismatched(), report.toString());
            assertFalse(report.isComplete());
            assertTrue(report.paramsIncluded());

            Map<String, float[]> after = b.tensors();
            for (String key : after.keySet()) {
                boolean loaded = report.loaded().contains(key);
                CudaEquivalenceTest.assertBitEqual(loaded ? atSave.get(key) : fresh.get(key), after.get(key),
                        key + (loaded ? " is loaded" : " stays fresh"));
            }
            assertEquals(5, b.opt.stepCount(), "the counters are restored");
            assertEquals(ADAM.learningRate() * 0.5, b.opt.groups().get(0).config().learningRate(), 1e-12);

            b.steps(7, 12); // LAYER1's gradients are the saved run's; with no clipping its update depends on nothing else
            Map<String, float[]> continued = b.tensors();
            for (String key : report.loaded()) {
                CudaEquivalenceTest.assertBitEqual(uninterrupted.get(key), continued.get(key), key + " continues as saved");
            }
        }
    }

    /** name/state for each state the spec keeps; {@code withMaster} for a 16-bit param (which has master weights). */
    private static List<String> keys(String name, List<String> states, boolean withMaster) {
        List<String> out = new ArrayList<>();
        for (String s : states) if (withMaster || !s.equals("master")) out.add(name + "/" + s);
        return out;
    }

    /** A non-strict load of a params-less checkpoint does not list the params as missing. */
    @Test
    void aNonStrictLoadWithoutParamsDoesNotReportThemMissing() throws IOException {
        byte[] state;
        try (Net a = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            a.steps(1, 3);
            state = a.opt.saveToBytes(SaveOptions.builder().optIncludeParams(false).build());
        }
        try (Net b = new Net(Backend.CPU, ADAM, List.of(LAYER0, LAYER1), 2)) {
            LoadReport report = b.opt.load(state, LoadOptions.builder().optStrict(false).build());
            assertEquals(List.of(), report.missing(), report.toString());
            assertEquals(keys(LAYER2.name(), List.of("master", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), true),
                    report.unexpected(), report.toString());
            assertFalse(report.paramsIncluded());
        }
    }

    /**
     * A non-strict load that matches no tensor (other names, other lengths) is refused: it would
     * move only the step counters, the groups' settings and the loss scale of another run.
     */
    @Test
    void aNonStrictLoadThatMatchesNoTensorIsRefused() throws IOException {
        byte[] saved;
        try (Net a = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            a.steps(1, 7); // halves group 0's rate at step 4
            saved = a.opt.saveToBytes();
        }
        Spec renamed = new Spec("encoder/weight", LAYER0.length(), 0, LAYER0.format());
        Spec resized = new Spec(LAYER1.name(), 9, 1, LAYER1.format());
        try (Net b = new Net(Backend.CPU, ADAM, List.of(renamed, resized), 2)) {
            Map<String, float[]> before = b.tensors();
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> b.opt.load(saved, LoadOptions.builder().optStrict(false).build()));
            assertTrue(e.getMessage().contains("byte array: a non-strict load matched none of this optimizer's tensors")
                    && e.getMessage().contains("parameter names"), e.getMessage());
            assertSameTensors(before, b.tensors(), "nothing changed");
            assertEquals(0, b.opt.stepCount(), "the step counter is not restored");
            assertEquals(ADAM.learningRate(), b.opt.groups().get(0).config().learningRate(), "nor the group's rate");
        }
    }

    /**
     * A stream whose reads return 0 bytes for ever (a broken non-blocking source), at its start, in
     * the header or in the data: refused, where the load used to spin for ever holding the lock.
     */
    @Test
    @Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
    void aStreamThatStopsDeliveringIsRefusedInsteadOfSpunOn() throws IOException {
        byte[] good;
        try (Net a = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            a.steps(1, 3);
            good = a.opt.saveToBytes();
        }
        int headerEnd = 8 + (int) ByteBuffer.wrap(good).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        try (Net target = new Net(Backend.CPU, ADAM, MODEL, 7)) {
            Map<String, float[]> before = target.tensors();
            for (int stallAt : new int[] {0, 5, headerEnd - 1, good.length - 1}) {
                String message = refused(target, before, () -> target.opt.load(stalledAfter(good, stallAt)), "stream: ",
                        "stalled at byte " + stallAt);
                assertTrue(message.contains("returned 0 bytes") && message.contains("at byte " + stallAt), message);
            }
            target.opt.load(new ByteArrayInputStream(good)); // still usable
            assertEquals(2, target.opt.stepCount());
        }
    }

    /** {@code bytes} up to {@code stallAt}, then reads that return 0 bytes for ever. */
    private static InputStream stalledAfter(byte[] bytes, int stallAt) {
        return new InputStream() {
            private int position;

            @Override
            public int read(byte[] b, int off, int len) {
                int n = Math.min(len, stallAt - position);
                System.arraycopy(bytes, position, b, off, n);
                position += n;
                return n;
            }

            @Override
            public int read() {
                throw new UnsupportedOperationException("a load reads through read(byte[], int, int)");
            }
        };
    }

    // ---- 4. refused calls: a clear message, nothing changed ----

    @Test
    void nullArgumentsAreRefused() throws IOException {
        try (Net n = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            assertMessage(() -> n.opt.load((byte[]) null), "checkpoint bytes must not be null");
            assertMessage(() -> n.opt.load((InputStream) null), "input stream must not be null");
            assertMessage(() -> n.opt.save((OutputStream) null), "output stream must not be null");
            assertMessage(() -> n.opt.load(new byte[8], null), "options must not be null");
            assertMessage(() -> n.opt.saveToBytes(null), "options must not be null");
            assertMessage(() -> n.opt.save(dir.resolve("x"), (SaveOptions) null), "options must not be null");
            assertEquals(0, n.opt.stepCount());
        }
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable call, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(expected, e.getMessage());
    }

    /** Truncated, overlong, damaged: refused from bytes and from a stream, naming the source, with nothing changed. */
    @ParameterizedTest
    @MethodSource("hostBackends")
    void damagedBytesAndStreamsAreRefusedAndChangeNothing(Backend backend) throws IOException {
        byte[] good;
        try (Net a = new Net(backend, ADAM, MODEL, 1)) {
            a.steps(1, 4);
            good = a.opt.saveToBytes();
        }
        long headerEnd = 8 + ByteBuffer.wrap(good).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        try (Net target = new Net(backend, ADAM, MODEL, 7)) {
            target.steps(1, 2);
            Map<String, float[]> before = target.tensors();
            for (long length : new long[] {0, 7, 8, headerEnd - 1, headerEnd, headerEnd + 1, good.length - 1}) {
                byte[] cut = Arrays.copyOf(good, (int) length);
                assertTrue(refusedBoth(target, before, cut, "truncated to " + length).contains("truncated"));
            }
            byte[] appended = Arrays.copyOf(good, good.length + 3);
            assertTrue(refusedBytes(target, before, appended, "trailing bytes").contains("data bytes"));
            assertTrue(refusedStream(target, before, appended, "trailing bytes").contains("trailing data"));
            // A header that claims 100 MiB in a stream of a few bytes: refused as truncated.
            byte[] lying = Arrays.copyOf(good, 64);
            ByteBuffer.wrap(lying).order(ByteOrder.LITTLE_ENDIAN).putLong(0, Safetensors.MAX_HEADER_BYTES);
            assertTrue(refusedStream(target, before, lying, "lying header length").contains("truncated"));
            ByteBuffer.wrap(lying).order(ByteOrder.LITTLE_ENDIAN).putLong(0, Long.MAX_VALUE);
            assertTrue(refusedBoth(target, before, lying, "absurd header length").contains("absurd"));
            Random random = new Random(5);
            for (int k = 0; k < 20; k++) {
                byte[] flipped = good.clone();
                int i = k < 10 ? random.nextInt((int) headerEnd) : (int) (headerEnd + random.nextInt((int) (good.length - headerEnd)));
                flipped[i] ^= (byte) (1 << random.nextInt(8));
                refusedBoth(target, before, flipped, "bit flipped in byte " + i);
            }
            assertEquals(1, target.opt.stepCount(), "nothing changed");
        }
    }

    /** A tensor a non-strict load does not take is still checked: damage anywhere refuses the load. */
    @Test
    void aNonStrictLoadChecksTheTensorsItIgnores() throws IOException {
        byte[] good;
        try (Net a = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            a.steps(1, 3);
            good = a.opt.saveToBytes();
        }
        Safetensors.Header header = parse(good);
        Safetensors.Entry ignored = header.entries().stream().filter(e -> e.name().equals("layer2/weight/exp_avg")).findFirst()
                .orElseThrow();
        byte[] damaged = good.clone();
        damaged[(int) (header.dataStart() + ignored.begin())] ^= 1;
        try (Net b = new Net(Backend.CPU, ADAM, List.of(LAYER0, LAYER1), 2)) {
            Map<String, float[]> before = b.tensors();
            LoadOptions lenient = LoadOptions.builder().optStrict(false).build();
            for (boolean stream : new boolean[] {false, true}) {
                CheckpointException e = assertThrows(CheckpointException.class,
                        () -> { if (stream) b.opt.load(new ByteArrayInputStream(damaged), lenient); else b.opt.load(damaged, lenient); });
                assertTrue(e.getMessage().contains("'layer2/weight/exp_avg' fails its CRC32C"), e.getMessage());
                assertSameTensors(before, b.tensors(), "nothing changed");
                assertEquals(0, b.opt.stepCount());
            }
            assertEquals(5, b.opt.load(good, lenient).unexpected().size(), "the undamaged checkpoint loads; layer2's 5 tensors unexpected");
        }
    }

    @Test
    void aParamsFlagOtherThanTrueOrFalseIsRefused() throws IOException {
        byte[] good;
        try (Net a = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            good = a.opt.saveToBytes();
        }
        Safetensors.Header header = parse(good);
        Map<String, String> metadata = new LinkedHashMap<>(header.metadata());
        metadata.remove(Safetensors.HEADER_CRC_KEY);
        metadata.put(Checkpoint.PARAMS_SAVED, "no");
        byte[] newHeader = Safetensors.encodeHeader(metadata, header.entries());
        byte[] bad = new byte[newHeader.length + (int) header.dataLength()];
        System.arraycopy(newHeader, 0, bad, 0, newHeader.length);
        System.arraycopy(good, (int) header.dataStart(), bad, newHeader.length, (int) header.dataLength());
        try (Net b = new Net(Backend.CPU, ADAM, MODEL, 2)) {
            Map<String, float[]> before = b.tensors();
            assertTrue(refusedBoth(b, before, bad, "params flag").contains("params_saved 'no' is neither true nor false"));
        }
    }

    @Test
    void aFailingStreamIsAClearErrorAndTheOptimizerIsUnchanged() throws IOException {
        try (Net n = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            n.steps(1, 3);
            Map<String, float[]> before = n.tensors();
            OutputStream full = new OutputStream() {
                int written;
                @Override public void write(int b) throws IOException { write(new byte[] {(byte) b}, 0, 1); }
                @Override public void write(byte[] b, int off, int len) throws IOException {
                    if (written + len > 1000) throw new IOException("No space left on device");
                    written += len;
                }
            };
            CheckpointException e = assertThrows(CheckpointException.class, () -> n.opt.save(full));
            assertTrue(e.getMessage().contains("No space left on device") && e.getMessage().contains("partial checkpoint"),
                    e.getMessage());
            assertSameTensors(before, n.tensors(), "a failed save changes nothing");
            assertEquals(2, n.opt.stepCount());
        }
    }

    @Test
    void aCheckpointLargerThanAnArrayIsRefusedBySaveToBytes() throws IOException {
        try (Net n = new Net(Backend.CPU, ADAM, MODEL, 1)) {
            // The limit is a parameter so that the test needs no 2 GiB optimizer.
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> Checkpoint.saveToBytes(n.opt, SaveOptions.defaults(), 1000));
            assertTrue(e.getMessage().contains("more than one Java array holds (1000)")
                    && e.getMessage().contains("save to a file or an OutputStream"), e.getMessage());
            assertTrue(n.opt.saveToBytes().length > 1000);
        }
    }

    private static Safetensors.Header parse(byte[] bytes) throws IOException {
        return Safetensors.parse("bytes", bytes.length, bytes, k -> Arrays.copyOfRange(bytes, 8, 8 + k));
    }

    private static String refusedBoth(Net target, Map<String, float[]> before, byte[] bytes, String what) throws IOException {
        refusedStream(target, before, bytes, what);
        return refusedBytes(target, before, bytes, what);
    }

    private static String refusedBytes(Net target, Map<String, float[]> before, byte[] bytes, String what) throws IOException {
        return refused(target, before, () -> target.opt.load(bytes), "byte array: ", what);
    }

    private static String refusedStream(Net target, Map<String, float[]> before, byte[] bytes, String what) throws IOException {
        return refused(target, before, () -> target.opt.load(new ByteArrayInputStream(bytes)), "stream: ", what);
    }

    private static String refused(Net target, Map<String, float[]> before, org.junit.jupiter.api.function.Executable load,
                                  String source, String what) {
        long steps = target.opt.stepCount();
        CheckpointException e = assertThrows(CheckpointException.class, load, what);
        assertTrue(e.getMessage().startsWith(source), what + ": the message names the source: " + e.getMessage());
        assertSameTensors(before, target.tensors(), what);
        assertEquals(steps, target.opt.stepCount(), what);
        return e.getMessage();
    }
}
