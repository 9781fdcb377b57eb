package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.QuantizedBuffer;
import io.fusedopt.internal.Safetensors;
import io.fusedopt.internal.Safetensors.Dtype;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Checkpoints of 8-bit blockwise states (docs/checkpoints.md, "8-bit states") on the reference
 * backend: exact resume, a layout another tool decodes by the documented rule alone, the
 * conversions between 8-bit and float states (each in the {@link LoadReport}), and the refusal of
 * damaged 8-bit tensors and metadata with nothing changed.
 */
class QuantizedCheckpointTest {
    /** Quantized: 19 full blocks and a partial one (20 absmax values). */
    static final int BIG = StateQuantization.MIN_ELEMENTS + 3 * 256 + 77;
    /** A bf16 param with fp32 master weights and quantized states. */
    static final int HALF = StateQuantization.MIN_ELEMENTS + 10;
    /** Below the threshold: float states in an 8-bit optimizer too. */
    static final int SMALL = 100;

    /** Three tensors in one group: "big" and "half" have 8-bit states in an 8-bit optimizer, "small" never. */
    static final class Model implements AutoCloseable {
        final DeviceOptimizer opt;
        final List<Parameter> params = new ArrayList<>();

        Model(Backend backend, OptimizerConfig config, StateQuantization quantization, Precision statePrecision, long seed) {
            opt = DeviceOptimizer.builder(config).optBackend(backend).optStatePrecision(statePrecision)
                    .optStateQuantization(quantization).build();
            ParamGroup group = opt.addGroup();
            Random random = new Random(seed);
            add(group, "big", BIG, Precision.FP32, random);
            add(group, "small", SMALL, Precision.FP32, random);
            add(group, "half", HALF, Precision.BF16, random);
        }

        Model(OptimizerConfig config, StateQuantization quantization, Precision statePrecision, long seed) {
            this(Backend.CPU, config, quantization, statePrecision, seed);
        }

        private void add(ParamGroup group, String name, int n, Precision precision, Random random) {
            TensorBuffer p = opt.allocate(n, precision);
            p.copyFrom(Scenario.gaussian(random, n, 1f));
            params.add(group.add(name, p, opt.allocate(n, precision)));
        }

        /** Steps from..to-1, each with its own gradients whatever the run. */
        void steps(int from, int to) {
            for (int t = from; t < to; t++) {
                Random random = new Random(100 + t);
                for (Parameter p : params) p.grad().copyFrom(Scenario.gaussian(random, (int) p.length(), 1f));
                opt.step();
            }
        }

        Parameter param(String name) {
            return opt.parameter(name).orElseThrow();
        }

        /** Every param, master and state as float32 values, and each 8-bit state's codes and absmax as stored. */
        Map<String, Object> snapshot() {
            Map<String, Object> out = new LinkedHashMap<>();
            for (Parameter p : params) {
                out.put(p.name() + "/param", p.param().toArray());
                p.masterWeights().ifPresent(m -> out.put(p.name() + "/master", m.toArray()));
                for (StateKind k : p.stateKinds()) {
                    String key = p.name() + "/" + k.stateName();
                    out.put(key, p.state(k).toArray());
                    if (p.stateBuffers().get(k) instanceof QuantizedBuffer q) {
                        out.put(key + " codes", codes(q));
                        out.put(key + " absmax", absmax(q));
                    }
                }
            }
            return out;
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    static byte[] codes(QuantizedBuffer q) {
        byte[] codes = new byte[(int) q.length()];
        q.readCodes(0, codes, 0, codes.length);
        return codes;
    }

    static float[] absmax(QuantizedBuffer q) {
        float[] absmax = new float[q.blocks()];
        q.readAbsmax(0, absmax, 0, absmax.length);
        return absmax;
    }

    static QuantizedBuffer quantized(Parameter p, StateKind kind) {
        return assertInstanceOf(QuantizedBuffer.class, p.stateBuffers().get(kind), p.name() + "/" + kind.stateName());
    }

    /** Every value bit for bit (float arrays), every byte (codes). */
    static void assertSame(Map<String, Object> expected, Map<String, Object> actual, String what) {
        assertEquals(expected.keySet(), actual.keySet(), what);
        for (String key : expected.keySet()) {
            if (expected.get(key) instanceof byte[] codes) {
                assertArrayEquals(codes, (byte[]) actual.get(key), what + ": " + key);
            } else {
                CudaEquivalenceTest.assertBitEqual((float[]) expected.get(key), (float[]) actual.get(key), what + ": " + key);
            }
        }
    }

    static Stream<OptimizerConfig> algorithms() {
        return Stream.of(Adam.adamW().optLearningRate(1e-2).build(),
                Momentum.builder().setMomentum(0.9).optNesterov(true).build(),
                RmsProp.builder().optCentered(true).optMomentum(0.5).build(),
                Adagrad.builder().optInitialAccumulatorValue(0.1).build(),
                Lion.builder().build(),
                AdEMAMix.builder().build());
    }

    /**
     * k steps, save, load into a fresh 8-bit optimizer (other initial params), N - k steps: the
     * params, masters, states and their codes and absmax as the uninterrupted run's, and a save
     * of each the same bytes. Loaded from a stream, which must read every part in data order.
     */
    @ParameterizedTest
    @MethodSource("algorithms")
    void resumingAnEightBitRunIsBitExact(OptimizerConfig config) throws IOException {
        byte[] saved, uninterruptedBytes;
        Map<String, Object> uninterrupted;
        try (Model a = new Model(config, StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 1)) {
            for (StateKind k : a.param("big").stateKinds()) quantized(a.param("big"), k);
            a.steps(1, 4);
            saved = a.opt.saveToBytes();
            a.steps(4, 8);
            uninterrupted = a.snapshot();
            uninterruptedBytes = a.opt.saveToBytes();
        }
        try (Model b = new Model(config, StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 2)) {
            LoadReport report = b.opt.load(new ByteArrayInputStream(saved), LoadOptions.defaults());
            assertTrue(report.isComplete() && report.converted().isEmpty(), report.toString());
            assertEquals(b.snapshot().size() - 2 * 2 * b.param("big").stateKinds().size(), report.loaded().size(),
                    "one entry per tensor; an absmax and a code map are not tensors of their own");
            b.steps(4, 8);
            assertSame(uninterrupted, b.snapshot(), "resumed");
            assertArrayEquals(uninterruptedBytes, b.opt.saveToBytes(), "a save of the resumed run is the uninterrupted run's");
        }
    }

    /**
     * The file read as another tool would, with only docs/checkpoints.md: the codes U8, the absmax
     * F32 per block of 256, the map named by code_map.NAME; {@code map[code[i]] * absmax[i / 256]}
     * is the state, bit for bit. States of a tensor below the threshold stay F32.
     */
    @Test
    void theFileDescribesItsEightBitStates() throws IOException {
        try (Model m = new Model(Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 1)) {
            m.steps(1, 3);
            byte[] bytes = m.opt.saveToBytes();
            Parts file = new Parts(bytes);
            assertEquals("BLOCKWISE_8BIT", file.metadata.get("state_quantization"));
            assertEquals("256", file.metadata.get("quantization_block_size"));
            assertEquals("FP32", file.metadata.get("state_precision"));
            assertEquals(Dtype.F32, file.tensors.get("small/exp_avg").dtype());
            assertFalse(file.metadata.containsKey("code_map.small/exp_avg"));
            assertFalse(file.tensors.containsKey("small/exp_avg.absmax"));
            for (String tensor : List.of("big", "half")) {
                Parameter p = m.param(tensor);
                for (StateKind kind : List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ)) {
                    String name = tensor + "/" + kind.stateName();
                    String mapName = file.metadata.get("code_map." + name);
                    assertEquals(kind == StateKind.EXP_AVG ? "quantization/dynamic" : "quantization/udynamic", mapName);
                    Parts.Tensor codes = file.tensors.get(name);
                    assertEquals(Dtype.U8, codes.dtype());
                    assertEquals(p.length(), codes.length());
                    assertEquals(Dtype.F32, file.tensors.get(name + ".absmax").dtype());
                    float[] absmax = file.floats(name + ".absmax");
                    assertEquals((p.length() + 255) / 256, absmax.length);
                    float[] map = file.floats(mapName);
                    float[] decoded = new float[(int) p.length()];
                    for (int i = 0; i < decoded.length; i++) decoded[i] = map[codes.bytes()[i] & 0xFF] * absmax[i / 256];
                    CudaEquivalenceTest.assertBitEqual(p.state(kind).toArray(), decoded, name + " decoded by the documented rule");
                }
            }
            assertArrayEquals(CodeMap.SIGNED.table(), file.floats("quantization/dynamic"));
            assertArrayEquals(CodeMap.UNSIGNED.table(), file.floats("quantization/udynamic"));
            assertEquals(List.of("big/param", "big/exp_avg", "big/exp_avg.absmax", "big/exp_avg_sq", "big/exp_avg_sq.absmax",
                    "small/param", "small/exp_avg", "small/exp_avg_sq", "half/param", "half/master", "half/exp_avg",
                    "half/exp_avg.absmax", "half/exp_avg_sq", "half/exp_avg_sq.absmax", "quantization/dynamic",
                    "quantization/udynamic"), List.copyOf(file.tensors.keySet()), "data order: each state's codes, then its absmax; the maps last");
            assertArrayEquals(bytes, file.bytes(), "taken apart and put together, the same bytes");
        }
        try (Model fp32 = new Model(Adam.adamW().build(), StateQuantization.NONE, Precision.FP32, 1)) {
            Parts file = new Parts(fp32.opt.saveToBytes());
            assertFalse(file.metadata.containsKey("state_quantization"), "written only by an 8-bit optimizer");
            assertFalse(file.metadata.containsKey("quantization_block_size"));
        }
    }

    /** A checkpoint and the tensors of the optimizer that saved it. */
    private record Trained(byte[] checkpoint, Map<String, Object> snapshot) {}

    /** AdamW after 3 steps. */
    private static Trained trained(StateQuantization quantization, Precision statePrecision) throws IOException {
        try (Model a = new Model(Adam.adamW().build(), quantization, statePrecision, 1)) {
            a.steps(1, 4);
            return new Trained(a.opt.saveToBytes(), a.snapshot());
        }
    }

    /**
     * A float checkpoint into an 8-bit optimizer (strict): each large state quantized block by
     * block as a step would, reported; the small tensor's and every param as stored. With bf16
     * states (both optimizers' state precision) the bf16 values are quantized.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(value = Precision.class, names = {"FP32", "BF16"})
    void aFloatCheckpointLoadsIntoAnEightBitOptimizerQuantized(Precision statePrecision) throws IOException {
        Trained floatStates = trained(StateQuantization.NONE, statePrecision);
        Map<String, Object> floats = floatStates.snapshot();
        try (Model b = new Model(Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, statePrecision, 2)) {
            LoadReport report = b.opt.load(floatStates.checkpoint(), LoadOptions.defaults());
            String dtype = statePrecision == Precision.FP32 ? "F32" : "BF16";
            assertEquals(Map.of("big/exp_avg", "quantized at load: " + dtype + " into 8-bit codes of quantization/dynamic",
                    "big/exp_avg_sq", "quantized at load: " + dtype + " into 8-bit codes of quantization/udynamic",
                    "half/exp_avg", "quantized at load: " + dtype + " into 8-bit codes of quantization/dynamic",
                    "half/exp_avg_sq", "quantized at load: " + dtype + " into 8-bit codes of quantization/udynamic"), report.converted());
            assertTrue(report.isComplete(), report.toString());
            assertTrue(report.toString().contains("converted {big/exp_avg=quantized at load"), report.toString());
            Map<String, Object> loaded = b.snapshot();
            for (String name : List.of("big", "half")) {
                for (StateKind kind : List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ)) {
                    String key = name + "/" + kind.stateName();
                    float[] values = (float[]) floats.get(key);
                    byte[] codes = new byte[values.length];
                    float[] absmax = new float[(values.length + 255) / 256];
                    BlockwiseQuantization.quantizeBlocks(values, BlockwiseQuantization.mapFor(kind), codes, absmax);
                    assertArrayEquals(codes, (byte[]) loaded.get(key + " codes"), key);
                    assertArrayEquals(absmax, (float[]) loaded.get(key + " absmax"), key);
                }
            }
            for (String key : List.of("big/param", "half/param", "half/master", "small/param", "small/exp_avg", "small/exp_avg_sq")) {
                CudaEquivalenceTest.assertBitEqual((float[]) floats.get(key), (float[]) loaded.get(key), key);
            }
            assertEquals(3, b.opt.stepCount());
            b.steps(4, 6); // and it trains on
            assertEquals(5, b.opt.stepCount());
        }
    }

    /**
     * An 8-bit checkpoint into an optimizer without quantization (strict): each 8-bit state
     * dequantized, {@code map[code] * absmax}, exactly the values the 8-bit optimizer read; with
     * bf16 states those values rounded to bf16. Reported, also by a non-strict load.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.EnumSource(value = Precision.class, names = {"FP32", "BF16"})
    void anEightBitCheckpointLoadsIntoAFloatOptimizerDequantized(Precision statePrecision) throws IOException {
        Trained eightBitStates = trained(StateQuantization.BLOCKWISE_8BIT, statePrecision);
        Map<String, Object> eightBit = eightBitStates.snapshot();
        for (boolean strict : new boolean[] {true, false}) {
            try (Model b = new Model(Adam.adamW().build(), StateQuantization.NONE, statePrecision, 2)) {
                LoadReport report = b.opt.load(eightBitStates.checkpoint(), LoadOptions.builder().optStrict(strict).build());
                assertEquals(Map.of("big/exp_avg", "dequantized: 8-bit codes of quantization/dynamic into " + statePrecision,
                        "big/exp_avg_sq", "dequantized: 8-bit codes of quantization/udynamic into " + statePrecision,
                        "half/exp_avg", "dequantized: 8-bit codes of quantization/dynamic into " + statePrecision,
                        "half/exp_avg_sq", "dequantized: 8-bit codes of quantization/udynamic into " + statePrecision),
                        report.converted());
                assertTrue(report.isComplete(), report.toString());
                Map<String, Object> loaded = b.snapshot();
                for (String key : loaded.keySet()) {
                    float[] expected = (float[]) eightBit.get(key);
                    if (statePrecision == Precision.BF16 && report.converted().containsKey(key)) {
                        TensorBuffer rounded = b.opt.allocate(expected.length, Precision.BF16);
                        rounded.copyFrom(expected);
                        expected = rounded.toArray();
                    }
                    CudaEquivalenceTest.assertBitEqual(expected, (float[]) loaded.get(key), key);
                }
                b.steps(4, 5);
            }
        }
    }

    /**
     * A state stored with another code map than the optimizer uses for it (a file another tool
     * wrote): decoded with its own map, quantized with the optimizer's, reported as requantized.
     */
    @Test
    void aStateOfAnotherMapIsRequantized() throws IOException {
        Parts file = new Parts(trained(StateQuantization.BLOCKWISE_8BIT, Precision.FP32).checkpoint());
        file.metadata.put("code_map.big/exp_avg", "quantization/udynamic"); // its codes now index the unsigned map
        byte[] codes = file.tensors.get("big/exp_avg").bytes();
        float[] absmax = file.floats("big/exp_avg.absmax");
        try (Model b = new Model(Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 2)) {
            LoadReport report = b.opt.load(file.bytes(), LoadOptions.defaults());
            assertEquals(Map.of("big/exp_avg", "requantized: 8-bit codes of quantization/udynamic into 8-bit codes of"
                    + " quantization/dynamic"), report.converted());
            float[] values = new float[BIG];
            BlockwiseQuantization.dequantizeBlocks(codes, absmax, CodeMap.UNSIGNED, values);
            byte[] expectedCodes = new byte[BIG];
            float[] expectedAbsmax = new float[absmax.length];
            BlockwiseQuantization.quantizeBlocks(values, CodeMap.SIGNED, expectedCodes, expectedAbsmax);
            QuantizedBuffer m = quantized(b.param("big"), StateKind.EXP_AVG);
            assertArrayEquals(expectedCodes, codes(m));
            assertArrayEquals(expectedAbsmax, absmax(m));
        }
    }

    /** A non-strict load names an 8-bit state it does not take once, as any tensor: not its absmax, not the code maps. */
    @Test
    void anIgnoredEightBitStateIsReportedAsOneTensor() throws IOException {
        byte[] saved = trained(StateQuantization.BLOCKWISE_8BIT, Precision.FP32).checkpoint();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT).build()) {
            ParamGroup group = opt.addGroup();
            group.add("small", opt.allocate(SMALL), opt.allocate(SMALL));
            group.add("half", opt.allocate(HALF, Precision.BF16), opt.allocate(HALF, Precision.BF16));
            LoadReport report = opt.load(saved, LoadOptions.builder().optStrict(false).build());
            assertEquals(List.of("big/param", "big/exp_avg", "big/exp_avg_sq"), report.unexpected());
            assertEquals(List.of("small/param", "small/exp_avg", "small/exp_avg_sq", "half/param", "half/master", "half/exp_avg",
                    "half/exp_avg_sq"), report.loaded());
            CheckpointException strict = assertThrows(CheckpointException.class, () -> opt.load(saved));
            assertTrue(strict.getMessage().contains("has tensor 'big/param', which this optimizer does not have (3 extra)"),
                    strict.getMessage());
        }
    }

    /**
     * A NaN absmax (a block that held NaN or infinity) and -0.0 (a block of zeros, as a tool that
     * computes the absmax as {@code max(max(x), -min(x))} may write) load, and save again as they were.
     */
    @Test
    void aNaNOrNegativeZeroAbsmaxIsLegitimate() throws IOException {
        try (Model a = new Model(Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 1)) {
            a.steps(1, 3);
            Parts file = new Parts(a.opt.saveToBytes());
            float[] absmax = file.floats("big/exp_avg.absmax");
            absmax[2] = Float.NaN;
            absmax[5] = -0f;
            file.setFloats("big/exp_avg.absmax", absmax);
            byte[] edited = file.bytes();
            try (Model b = new Model(Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 2)) {
                b.opt.load(edited);
                float[] m = b.param("big").state(StateKind.EXP_AVG).toArray();
                for (int i = 0; i < 256; i++) {
                    assertTrue(Float.isNaN(m[2 * 256 + i]), "block 2 reads NaN");
                    assertTrue(m[5 * 256 + i] == 0f, "block 5 reads zeros (their signs the map values')");
                }
                assertArrayEquals(edited, b.opt.saveToBytes(), "saved again bit for bit");
            }
        }
    }

    /**
     * A checkpoint of 8-bit states moves between the reference backend and CUDA, both ways: the
     * device's codes, absmax and values are the saved ones, a save on CUDA holds every tensor of
     * the reference backend's save byte for byte, and runs resumed on each backend stay equal.
     */
    @Test
    @org.junit.jupiter.api.Tag("gpu")
    void eightBitStatesMoveBetweenBackendsAsTheyAre() throws IOException {
        GpuTests.assumeGpu();
        Trained cpu = trained(StateQuantization.BLOCKWISE_8BIT, Precision.FP32);
        try (Model cuda = new Model(Backend.CUDA, Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 2)) {
            assertTrue(cuda.opt.load(cpu.checkpoint(), LoadOptions.defaults()).converted().isEmpty());
            assertSame(cpu.snapshot(), cuda.snapshot(), "loaded on CUDA");
            Parts fromCuda = new Parts(cuda.opt.saveToBytes());
            Parts fromCpu = new Parts(cpu.checkpoint());
            assertEquals(fromCpu.tensors.keySet(), fromCuda.tensors.keySet());
            for (String name : fromCpu.tensors.keySet()) {
                assertArrayEquals(fromCpu.tensors.get(name).bytes(), fromCuda.tensors.get(name).bytes(), name + " saved on CUDA");
            }
            try (Model back = new Model(Backend.CPU, Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 3)) {
                back.opt.load(fromCuda.bytes());
                assertSame(cpu.snapshot(), back.snapshot(), "saved on CUDA, loaded on the reference backend");
            }
            // Resumed on both backends (the _q8 kernels on CUDA): the same bits three steps on.
            try (Model resumed = new Model(Backend.CPU, Adam.adamW().build(), StateQuantization.BLOCKWISE_8BIT, Precision.FP32, 4)) {
                resumed.opt.load(cpu.checkpoint());
                resumed.steps(4, 7);
                cuda.steps(4, 7);
                assertSame(resumed.snapshot(), cuda.snapshot(), "resumed on CUDA and on the reference backend");
            }
        }
    }

    /** A change to an 8-bit checkpoint, the messages it must be refused with, and whether a non-strict load refuses it too. */
    private record Damage(String what, Consumer<Parts> change, boolean refusedNonStrict, String... expected) {}

    static Stream<Damage> damages() {
        return Stream.of(
                new Damage("negative absmax", f -> setAbsmax(f, 3, -2.5f), true, "'big/exp_avg.absmax' holds -2.5 for block 3"),
                new Damage("infinite absmax", f -> setAbsmax(f, 0, Float.POSITIVE_INFINITY), true,
                        "'big/exp_avg.absmax' holds Infinity for block 0", "finite and >= 0"),
                new Damage("-infinite absmax", f -> setAbsmax(f, 19, Float.NEGATIVE_INFINITY), true,
                        "'big/exp_avg.absmax' holds -Infinity for block 19"),
                new Damage("a map entry off by an ulp", f -> {
                    float[] map = f.floats("quantization/dynamic");
                    map[17] = Math.nextUp(map[17]);
                    f.setFloats("quantization/dynamic", map);
                }, true, "code map tensor 'quantization/dynamic' holds " + Math.nextUp(CodeMap.SIGNED.value(17)) + " at code 17",
                        "dynamic map (create_dynamic_map) holds " + CodeMap.SIGNED.value(17)),
                new Damage("a map tensor of 255 values", f -> f.setFloats("quantization/udynamic",
                        Arrays.copyOf(CodeMap.UNSIGNED.table(), 255)), true, "code map tensor 'quantization/udynamic' is F32 [255]",
                        "F32 [256]"),
                new Damage("a map tensor missing", f -> f.remove("quantization/udynamic"), true,
                        "code_map.big/exp_avg_sq names tensor 'quantization/udynamic', which the checkpoint lacks"),
                new Damage("an unknown map name", f -> f.metadata.put("code_map.big/exp_avg", "quantization/dynamic4"), true,
                        "code_map.big/exp_avg is 'quantization/dynamic4', not a code map of this library"),
                new Damage("no map name", f -> f.metadata.remove("code_map.half/exp_avg"), true,
                        "8-bit tensor 'half/exp_avg' has no code_map.half/exp_avg"),
                new Damage("absmax missing", f -> f.remove("half/exp_avg_sq.absmax"), true,
                        "8-bit tensor 'half/exp_avg_sq' lacks its scales, tensor 'half/exp_avg_sq.absmax'"),
                new Damage("absmax one block short", f -> f.setFloats("big/exp_avg.absmax",
                        Arrays.copyOf(f.floats("big/exp_avg.absmax"), 19)), true,
                        "tensor 'big/exp_avg.absmax' is F32 [19]; the " + BIG + " codes of 'big/exp_avg' need F32 [20]"),
                new Damage("absmax of bf16", f -> f.put("big/exp_avg.absmax", Dtype.BF16, 20, new byte[40]), true,
                        "tensor 'big/exp_avg.absmax' is BF16 [20]"),
                new Damage("codes stored as floats", f -> f.setFloats("big/exp_avg", new float[BIG]), true,
                        "code_map.big/exp_avg names no U8 (8-bit codes) tensor"),
                new Damage("codes one short", f -> f.put("big/exp_avg", Dtype.U8, BIG - 1, new byte[BIG - 1]), false,
                        "tensor 'big/exp_avg' has " + (BIG - 1) + " elements, this optimizer's has " + BIG + " (wrong shape)"),
                new Damage("block size 128", f -> f.metadata.put("quantization_block_size", "128"), true,
                        "quantization_block_size is '128'; this library's 8-bit states have blocks of 256 elements"),
                new Damage("no block size", f -> f.metadata.remove("quantization_block_size"), true,
                        "the checkpoint has 8-bit states but no quantization_block_size"),
                new Damage("no state_quantization", f -> f.metadata.remove("state_quantization"), true,
                        "tensor 'big/exp_avg' is U8 (8-bit codes), but the checkpoint has no state_quantization"),
                new Damage("an unknown quantization", f -> f.metadata.put("state_quantization", "BLOCKWISE_4BIT"), true,
                        "state_quantization 'BLOCKWISE_4BIT' is not one of [NONE, BLOCKWISE_8BIT]"));
    }

    private static void setAbsmax(Parts file, int block, float value) {
        float[] absmax = file.floats("big/exp_avg.absmax");
        absmax[block] = value;
        file.setFloats("big/exp_avg.absmax", absmax);
    }

    /**
     * Each damage, in a file whose checksums agree with it (written so, not a flipped bit): refused
     * by a strict load and (but for a shape mismatch, which it reports) a non-strict one, from
     * bytes and from a stream, each naming the tensor and the bad value; nothing changed, into an
     * 8-bit optimizer and into a float one.
     */
    @ParameterizedTest
    @MethodSource("damages")
    void damagedEightBitStatesAreRefusedAndChangeNothing(Damage damage) throws IOException {
        byte[] good = trained(StateQuantization.BLOCKWISE_8BIT, Precision.FP32).checkpoint();
        Parts file = new Parts(good);
        damage.change().accept(file);
        byte[] bad = file.bytes();
        for (StateQuantization quantization : StateQuantization.values()) {
            try (Model target = new Model(Adam.adamW().build(), quantization, Precision.FP32, 7)) {
                target.steps(1, 2);
                Map<String, Object> before = target.snapshot();
                for (boolean strict : damage.refusedNonStrict() ? new boolean[] {true, false} : new boolean[] {true}) {
                    LoadOptions options = LoadOptions.builder().optStrict(strict).build();
                    for (boolean stream : new boolean[] {false, true}) {
                        String what = damage.what() + (strict ? ", strict" : ", non-strict") + (stream ? ", stream" : ", bytes")
                                + ", into " + quantization;
                        CheckpointException e = assertThrows(CheckpointException.class, () -> {
                            if (stream) target.opt.load(new ByteArrayInputStream(bad), options); else target.opt.load(bad, options);
                        }, what);
                        for (String expected : damage.expected()) assertTrue(e.getMessage().contains(expected), what + ": " + e.getMessage());
                        assertSame(before, target.snapshot(), what + ": nothing changed");
                        assertEquals(1, target.opt.stepCount(), what);
                    }
                }
                target.opt.load(good); // the undamaged file loads
                assertEquals(3, target.opt.stepCount());
            }
        }
    }

    /**
     * A checkpoint taken apart into its metadata and tensors, to change and put together again
     * with every tensor's CRC32C and the header's recomputed: a well-formed file that says
     * something wrong, which only the 8-bit checks can refuse.
     */
    static final class Parts {
        record Tensor(Dtype dtype, long length, byte[] bytes) {}

        final Map<String, String> metadata = new LinkedHashMap<>();
        final Map<String, Tensor> tensors = new LinkedHashMap<>();

        Parts(byte[] checkpoint) throws IOException {
            Safetensors.Header h = Safetensors.parse("bytes", checkpoint.length, checkpoint,
                    k -> Arrays.copyOfRange(checkpoint, 8, 8 + k));
            metadata.putAll(h.metadata());
            metadata.remove(Safetensors.HEADER_CRC_KEY);
            for (Safetensors.Entry e : h.entries()) {
                tensors.put(e.name(), new Tensor(e.dtype(), e.length(),
                        Arrays.copyOfRange(checkpoint, (int) (h.dataStart() + e.begin()), (int) (h.dataStart() + e.end()))));
            }
        }

        float[] floats(String name) {
            Tensor t = tensors.get(name);
            assertEquals(Dtype.F32, t.dtype(), name);
            float[] v = new float[(int) t.length()];
            ByteBuffer.wrap(t.bytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
            return v;
        }

        void setFloats(String name, float[] v) {
            ByteBuffer bytes = ByteBuffer.allocate(v.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            bytes.asFloatBuffer().put(v);
            put(name, Dtype.F32, v.length, bytes.array());
        }

        /** Replaces the tensor's type, length and data (in place: the data order is kept). */
        void put(String name, Dtype dtype, long length, byte[] bytes) {
            tensors.put(name, new Tensor(dtype, length, bytes));
        }

        void remove(String name) {
            tensors.remove(name);
            metadata.remove("crc32c." + name);
        }

        byte[] bytes() throws IOException {
            List<Safetensors.Entry> entries = new ArrayList<>();
            ByteArrayOutputStream data = new ByteArrayOutputStream();
            for (Map.Entry<String, Tensor> t : tensors.entrySet()) {
                byte[] bytes = t.getValue().bytes();
                entries.add(new Safetensors.Entry(t.getKey(), t.getValue().dtype(), t.getValue().length(), data.size(),
                        data.size() + bytes.length));
                data.write(bytes);
                CRC32C crc = new CRC32C();
                crc.update(bytes);
                metadata.put("crc32c." + t.getKey(), Safetensors.crcHex(crc.getValue()));
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            out.write(Safetensors.encodeHeader(metadata, entries));
            data.writeTo(out);
            return out.toByteArray();
        }
    }
}
