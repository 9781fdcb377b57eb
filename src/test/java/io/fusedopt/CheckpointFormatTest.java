package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checkpoint byte format is frozen: {@code golden.safetensors} (next to this class in the test
 * resources) was written by {@link #main} with the Jackson-based header writer, before fusedopt
 * had its own JSON code. The same optimizer saved today must produce the same bytes, and the stored
 * file must load and resume. Parameter names exercise every escaping rule of the header JSON:
 * quotes, backslashes, control characters, DEL, non-ASCII, characters outside the BMP and lone
 * surrogates.
 */
class CheckpointFormatTest {
    static final String RESOURCE = "golden.safetensors";
    static final List<String> NAMES = List.of(
            "plain/weight",
            "quote\" back\\slash /slash",
            "ctl \u0000\u0001\u0007\u001f \t\n\r\b\f del\u007f",
            "accents \u00e9\u00fc \u4e2d\u6587 \u2028\u2029 \ufeff",
            "astral \ud83d\ude00 \ud834\udd1e",
            "lone \ud800 and \udc00",
            "header_crc32c");
    static final int STEPS = 4;

    @TempDir
    Path dir;

    /** The optimizer of the golden file: Adam, two groups, bf16 params with fp32 masters and f32 ones. */
    static DeviceOptimizer model() {
        DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().optLearningRate(1e-2).build()).optBackend(Backend.CPU)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
        ParamGroup a = opt.addGroup();
        ParamGroup b = opt.addGroup(Adam.builder().optLearningRate(3e-3).build());
        Random random = new Random(42);
        for (int i = 0; i < NAMES.size(); i++) {
            int n = 1 + i * 3;
            Precision precision = i % 2 == 0 ? Precision.FP32 : Precision.BF16;
            TensorBuffer p = opt.allocate(n, precision);
            p.copyFrom(values(random, n));
            (i % 3 == 0 ? b : a).add(NAMES.get(i), p, opt.allocate(n, precision));
        }
        return opt;
    }

    static void train(DeviceOptimizer opt) {
        Random random = new Random(7);
        for (int t = 0; t < STEPS; t++) {
            for (ParamGroup g : opt.groups()) {
                for (Parameter p : g.parameters()) p.grad().copyFrom(values(random, (int) p.length()));
            }
            opt.step();
        }
    }

    private static float[] values(Random random, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian();
        return v;
    }

    static byte[] golden() throws IOException {
        try (InputStream in = CheckpointFormatTest.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IllegalStateException(RESOURCE + " is missing from the test resources");
            return in.readAllBytes();
        }
    }

    @Test
    void saveWritesTheSameBytesAsTheJacksonBasedWriterDid() throws IOException {
        Path file = dir.resolve("now.safetensors");
        try (DeviceOptimizer opt = model()) {
            train(opt);
            opt.save(file);
        }
        byte[] expected = golden(), actual = Files.readAllBytes(file);
        int header = (int) (expected[0] & 0xFF | (expected[1] & 0xFF) << 8 | (expected[2] & 0xFF) << 16) + 8;
        assertEquals(new String(expected, 8, header - 8, java.nio.charset.StandardCharsets.UTF_8),
                new String(actual, 8, Math.min(actual.length, header) - 8, java.nio.charset.StandardCharsets.UTF_8),
                "header JSON");
        assertArrayEquals(expected, actual, "the whole file");
    }

    @Test
    void aCheckpointWrittenBeforeTheChangeLoadsAndResumes() throws IOException {
        Path file = dir.resolve("golden.safetensors");
        Files.write(file, golden());
        try (DeviceOptimizer trained = model(); DeviceOptimizer loaded = model()) {
            train(trained);
            loaded.load(file);
            assertEquals(trained.stepCount(), loaded.stepCount());
            for (int g = 0; g < trained.groups().size(); g++) {
                List<Parameter> expected = trained.groups().get(g).parameters(), actual = loaded.groups().get(g).parameters();
                for (int i = 0; i < expected.size(); i++) {
                    assertEquals(expected.get(i).name(), actual.get(i).name());
                    CudaEquivalenceTest.assertBitEqual(expected.get(i).param().toArray(), actual.get(i).param().toArray(),
                            expected.get(i).name());
                }
            }
        }
    }

    /** Writes the golden file: {@code java ... io.fusedopt.CheckpointFormatTest FILE}. */
    public static void main(String[] args) throws IOException {
        try (DeviceOptimizer opt = model()) {
            train(opt);
            opt.save(Path.of(args[0]).toAbsolutePath());
        }
    }
}
