package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints of thousands of tiny tensors, the case the header's parsing and writing are built
 * for: two metadata entries per tensor written straight into the header, read back through one
 * table, and matched with the optimizer's tensors in the order a save writes them. The files load
 * bit for bit whatever the path (file, bytes, stream), also into an optimizer that registered the
 * same tensors in another order (where the in-order matching gives way to lookups).
 */
class CheckpointManyTensorsTest {
    static final int TENSORS = 10_000;

    @TempDir
    Path dir;

    /** TENSORS tensors of 1 to 5 elements in two groups, every third one bf16; {@code reversed} registers them last to first. */
    static DeviceOptimizer model(Backend backend, boolean reversed) {
        DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().optLearningRate(1e-2).build()).optBackend(backend)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
        ParamGroup a = opt.addGroup();
        ParamGroup b = opt.addGroup(Adam.builder().optLearningRate(3e-3).build());
        for (int k = 0; k < TENSORS; k++) {
            int i = reversed ? TENSORS - 1 - k : k;
            int n = 1 + i % 5;
            Precision precision = i % 3 == 0 ? Precision.BF16 : Precision.FP32;
            (i % 2 == 0 ? a : b).add("block" + i + ".w", opt.allocate(n, precision), opt.allocate(n, precision));
        }
        return opt;
    }

    static Map<String, Parameter> byName(DeviceOptimizer opt) {
        Map<String, Parameter> out = new HashMap<>();
        for (ParamGroup g : opt.groups()) for (Parameter p : g.parameters()) out.put(p.name(), p);
        return out;
    }

    static void train(DeviceOptimizer opt, int steps) {
        Random random = new Random(5);
        Map<String, Parameter> params = byName(opt);
        for (int t = 0; t < steps; t++) {
            for (int i = 0; i < TENSORS; i++) {
                Parameter p = params.get("block" + i + ".w");
                p.grad().copyFrom(Scenario.gaussian(random, (int) p.length(), 1f));
            }
            opt.step();
        }
    }

    /** Every param, master and state by tensor name, in name order: independent of registration order. */
    static List<float[]> values(DeviceOptimizer opt) {
        List<float[]> out = new ArrayList<>();
        Map<String, Parameter> params = byName(opt);
        for (int i = 0; i < TENSORS; i++) {
            Parameter p = params.get("block" + i + ".w");
            out.add(p.param().toArray());
            p.masterWeights().ifPresent(m -> out.add(m.toArray()));
            for (StateKind kind : p.stateKinds()) out.add(p.state(kind).toArray());
        }
        return out;
    }

    static void assertSameValues(List<float[]> expected, List<float[]> actual, String where) {
        assertEquals(expected.size(), actual.size(), where);
        for (int i = 0; i < expected.size(); i++) CudaEquivalenceTest.assertBitEqual(expected.get(i), actual.get(i), where + " #" + i);
    }

    @Test
    void tinyTensorsRoundTripBitForBitThroughFileBytesAndStream() throws IOException {
        Path file = dir.resolve("many.safetensors");
        byte[] bytes;
        List<float[]> saved;
        try (DeviceOptimizer opt = model(Backend.CPU_FAST, false)) {
            train(opt, 3);
            opt.save(file);
            bytes = opt.saveToBytes();
            saved = values(opt);
            assertArrayEquals(Files.readAllBytes(file), bytes, "file and byte array hold the same checkpoint");
        }
        for (String path : List.of("file", "bytes", "stream")) {
            try (DeviceOptimizer fresh = model(Backend.CPU_FAST, false)) {
                switch (path) {
                    case "file" -> fresh.load(file);
                    case "bytes" -> fresh.load(bytes);
                    default -> fresh.load(new ByteArrayInputStream(bytes));
                }
                assertSameValues(saved, values(fresh), path);
                assertEquals(3, fresh.stepCount(), path);
                assertArrayEquals(bytes, fresh.saveToBytes(), path + ": saved again, the same bytes");
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                fresh.save(out);
                assertArrayEquals(bytes, out.toByteArray(), path + ": saved again to a stream, the same bytes");
            }
        }
    }

    @Test
    void aCheckpointLoadsIntoTheSameTensorsRegisteredInAnotherOrder() throws IOException {
        byte[] bytes;
        List<float[]> saved;
        try (DeviceOptimizer opt = model(Backend.CPU, false)) {
            train(opt, 2);
            bytes = opt.saveToBytes();
            saved = values(opt);
        }
        try (DeviceOptimizer reversed = model(Backend.CPU, true)) {
            LoadReport report = reversed.load(bytes, LoadOptions.defaults());
            assertTrue(report.isComplete(), report.toString());
            assertSameValues(saved, values(reversed), "reversed registration");
            train(reversed, 1); // and it steps on from there
        }
    }

    @Test
    void aNonStrictLoadReportsExtraTensorsInTheCheckpointsOrder() throws IOException {
        byte[] bytes;
        try (DeviceOptimizer opt = model(Backend.CPU, false)) {
            train(opt, 1);
            opt.addGroup().add("late", opt.allocate(3), opt.allocate(3));
            opt.addGroup().add("later", opt.allocate(2), opt.allocate(2));
            bytes = opt.saveToBytes();
        }
        try (DeviceOptimizer fewer = model(Backend.CPU, true)) {
            fewer.addGroup();
            fewer.addGroup();
            LoadReport report = fewer.load(bytes, LoadOptions.builder().optStrict(false).build());
            assertEquals(List.of("late/param", "late/exp_avg", "late/exp_avg_sq", "later/param", "later/exp_avg", "later/exp_avg_sq"),
                    report.unexpected());
            int bf16 = (TENSORS + 2) / 3; // with master weights: param, master and two states
            assertEquals(TENSORS * 3 + bf16, report.loaded().size());
        }
    }

    /**
     * A frozen parameter whose name ends in {@code "header_crc32c} (a quote, then the key) puts the
     * header's checksum key into the JSON a second time ({@code "frozen.x\"header_crc32c":"true"}),
     * so no reader could find the checksum: the save is refused with a message saying so (it failed
     * with an ArrayIndexOutOfBoundsException before).
     */
    @Test
    void aNameThatRepeatsTheChecksumKeyIsRefusedWithAMessage() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            opt.addGroup().add("x\"header_crc32c", opt.allocate(2), opt.allocate(2)).freeze();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, opt::saveToBytes);
            assertTrue(e.getMessage().contains("header_crc32c") && e.getMessage().contains("rename the parameter"), e.getMessage());
        }
    }
}
