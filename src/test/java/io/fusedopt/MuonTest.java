package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.Conversions;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Muon through the optimizer on both CPU backends: CPU_FAST (SIMD products on every core) bit for
 * bit the reference backend's, over shapes that take the transposed path, a 1-row matrix, matrices
 * large enough for the parallel products, every variant, 16-bit params with and without masters,
 * 16-bit states, the gradient pipeline, skipped steps, late and frozen tensors, beside an AdamW group
 * and across a checkpoint; and every refusal (MuonNewtonSchulzTest holds the numbers against the
 * float64 reference; CudaMuonTest the device).
 */
class MuonTest {
    /** {rows, cols}: wide, tall (transposed), square, one row, one column, and 64 x 96 / 96 x 64, whose products run on the team. */
    static final int[][] SHAPES = {{3, 5}, {8, 4}, {16, 16}, {1, 7}, {7, 1}, {64, 96}, {96, 64}};
    private static final int STEPS = 4;

    /** Every param and state after {@link #STEPS} steps (lr halved before the third), by tensor name. */
    private static Map<String, float[]> train(Backend backend, Muon config, Consumer<DeviceOptimizer.Builder> options, Precision param) {
        DeviceOptimizer.Builder builder = DeviceOptimizer.builder(config).optBackend(backend);
        options.accept(builder);
        try (DeviceOptimizer opt = builder.build()) {
            List<Parameter> params = register(opt, opt.addGroup(config), param);
            for (int t = 0; t < STEPS; t++) {
                if (t == 2) opt.groups().get(0).setLearningRate(config.learningRate() / 2);
                feed(params, t);
                opt.step();
            }
            return values(params);
        }
    }

    static List<Parameter> register(DeviceOptimizer opt, ParamGroup group, Precision precision) {
        List<Parameter> params = new ArrayList<>();
        for (int[] shape : SHAPES) {
            int n = shape[0] * shape[1];
            TensorBuffer p = opt.allocate(n, precision);
            float[] initial = Scenario.gaussian(new Random(n + 31L * shape[0]), n, 1f);
            // bf16 values, so that a bf16 param and an fp32 one start equal
            for (int i = 0; i < n; i++) initial[i] = Conversions.bf16ToFloat(Conversions.floatToBf16(initial[i]));
            p.copyFrom(initial);
            params.add(group.add("w" + shape[0] + "x" + shape[1], p, opt.allocate(n), shape[0], shape[1]));
        }
        return params;
    }

    /** Step t's gradient of each tensor: a function of its name and t alone. */
    static void feed(List<Parameter> params, int t) {
        for (Parameter p : params) p.grad().copyFrom(Scenario.gaussian(new Random(31L * p.name().hashCode() + t), (int) p.length(), 1f));
    }

    static Map<String, float[]> values(List<Parameter> params) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Parameter p : params) {
            out.put(p.name(), p.param().toArray());
            p.masterWeights().ifPresent(m -> out.put(p.name() + "/master", m.toArray()));
            for (StateKind k : p.stateKinds()) out.put(p.name() + "/" + k.stateName(), p.state(k).toArray());
        }
        return out;
    }

    static void assertSameValues(Map<String, float[]> expected, Map<String, float[]> actual, String what) {
        assertEquals(expected.keySet(), actual.keySet(), what);
        expected.forEach((name, v) -> assertArrayEquals(v, actual.get(name), what + ": " + name));
    }

    private static Muon variant(String name) {
        return (Muon) Algorithms.variants().get(name);
    }

    @ParameterizedTest
    @ValueSource(strings = {"muon", "muon-plain-rms-adamw"})
    void theFastBackendGivesTheReferenceBits(String name) {
        Map<String, float[]> reference = train(Backend.CPU, variant(name), b -> {}, Precision.FP32);
        assertSameValues(reference, train(Backend.CPU_FAST, variant(name), b -> {}, Precision.FP32), name + " on CPU_FAST");
        assertSameValues(reference, train(Backend.CPU_FAST, variant(name), b -> b.optCpuThreads(1), Precision.FP32),
                name + " on CPU_FAST, one thread");
        reference.forEach((tensor, v) -> {
            for (float x : v) assertTrue(Float.isFinite(x), tensor);
        });
    }

    /** Clipping and loss scaling prepare the gradient before the matrix input, on both backends alike. */
    @Test
    void theGradientPipelineRunsBeforeTheMatrixInput() {
        Muon config = variant("muon");
        Map<String, float[]> plain = train(Backend.CPU, config, b -> {}, Precision.FP32);
        Consumer<DeviceOptimizer.Builder> clipped = b -> b.optMaxGradNorm(0.5);
        Consumer<DeviceOptimizer.Builder> scaled = b -> b.optDynamicLossScaling(DynamicLossScaling.gradScalerDefaults())
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP);
        for (Consumer<DeviceOptimizer.Builder> pipeline : List.of(clipped, scaled)) {
            Map<String, float[]> reference = train(Backend.CPU, config, pipeline, Precision.FP32);
            assertSameValues(reference, train(Backend.CPU_FAST, config, pipeline, Precision.FP32), "prepared gradients on CPU_FAST");
            assertNotEquals(plain.get("w16x16/momentum_buffer")[0], reference.get("w16x16/momentum_buffer")[0],
                    "the prepared gradient moves the buffer differently");
        }
    }

    /**
     * A bf16 param with fp32 master weights: the master takes the fp32 run's path bit for bit (the
     * update reads the master), and the param is the master rounded to nearest.
     */
    @Test
    void masterWeightsFollowTheFloat32PathAndTheParamIsTheirRounding() {
        Muon config = variant("muon");
        Map<String, float[]> fp32 = train(Backend.CPU, config, b -> {}, Precision.FP32);
        Map<String, float[]> bf16 = train(Backend.CPU, config, b -> {}, Precision.BF16);
        assertSameValues(bf16, train(Backend.CPU_FAST, config, b -> {}, Precision.BF16), "bf16 + master on CPU_FAST");
        for (int[] shape : SHAPES) {
            String name = "w" + shape[0] + "x" + shape[1];
            float[] master = bf16.get(name + "/master");
            float[] param = bf16.get(name);
            assertArrayEquals(fp32.get(name), master, name + ": the master is the fp32 run's param");
            assertArrayEquals(fp32.get(name + "/momentum_buffer"), bf16.get(name + "/momentum_buffer"), name + ": buffer");
            for (int i = 0; i < master.length; i++) {
                assertEquals(Conversions.bf16ToFloat(Conversions.floatToBf16(master[i])), param[i], name + "[" + i + "]");
            }
        }
    }

    @Test
    void sixteenBitStatesAndStochasticRoundingAgreeAcrossBackends() {
        Muon config = variant("muon");
        Consumer<DeviceOptimizer.Builder> bf16States = b -> b.optStatePrecision(Precision.BF16);
        assertSameValues(train(Backend.CPU, config, bf16States, Precision.FP32),
                train(Backend.CPU_FAST, config, bf16States, Precision.FP32), "bf16 states");
        Consumer<DeviceOptimizer.Builder> stochastic = b -> b.optMasterWeights(false).optStochasticRounding(2024);
        Map<String, float[]> rounded = train(Backend.CPU, config, stochastic, Precision.BF16);
        assertSameValues(rounded, train(Backend.CPU_FAST, config, stochastic, Precision.BF16), "bf16 stochastic rounding");
        Map<String, float[]> nearest = train(Backend.CPU, config, b -> b.optMasterWeights(false), Precision.BF16);
        assertTrue(!java.util.Arrays.equals(rounded.get("w64x96"), nearest.get("w64x96")), "stochastic rounding draws");
    }

    /** A non-finite gradient with SKIP_STEP: no param and no buffer moves, on either backend. */
    @ParameterizedTest
    @ValueSource(strings = {"CPU", "CPU_FAST"})
    void aSkippedStepChangesNothing(String backend) {
        Muon config = variant("muon");
        try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(Backend.valueOf(backend))
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
            List<Parameter> params = register(opt, opt.addGroup(config), Precision.FP32);
            feed(params, 0);
            opt.step();
            Map<String, float[]> before = values(params);
            feed(params, 1);
            float[] g = params.get(2).grad().toArray();
            g[5] = Float.NaN;
            params.get(2).grad().copyFrom(g);
            opt.step();
            assertSameValues(before, values(params), "after a skipped step");
        }
    }

    /** Muon's hidden matrices beside an AdamW group (the MuonWithAuxAdam pattern) resume exactly across a checkpoint and a backend change. */
    @Test
    void muonBesideAdamWResumesExactlyFromACheckpoint() throws IOException {
        Muon muon = variant("muon");
        Adam adamW = Adam.adamW().optLearningRate(1e-2).build();
        Map<String, float[]> uninterrupted;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(adamW).optBackend(Backend.CPU).build()) {
            List<Parameter> params = registerBoth(opt, muon, adamW);
            for (int t = 0; t < STEPS; t++) {
                feed(params, t);
                opt.step();
            }
            uninterrupted = values(params);
        }
        byte[] saved;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(adamW).optBackend(Backend.CPU).build()) {
            List<Parameter> params = registerBoth(opt, muon, adamW);
            for (int t = 0; t < 2; t++) {
                feed(params, t);
                opt.step();
            }
            saved = opt.saveToBytes();
        }
        try (DeviceOptimizer opt = DeviceOptimizer.builder(adamW).optBackend(Backend.CPU_FAST).build()) {
            List<Parameter> params = registerBoth(opt, muon, adamW);
            opt.load(saved);
            for (int t = 2; t < STEPS; t++) {
                feed(params, t);
                opt.step();
            }
            assertSameValues(uninterrupted, values(params), "resumed on CPU_FAST");
        }
    }

    private static List<Parameter> registerBoth(DeviceOptimizer opt, Muon muon, Adam adamW) {
        List<Parameter> params = register(opt, opt.addGroup(muon), Precision.FP32);
        ParamGroup aux = opt.addGroup(adamW);
        TensorBuffer bias = opt.allocate(16);
        bias.copyFrom(Scenario.gaussian(new Random(5), 16, 1f));
        params.add(aux.add("bias", bias, opt.allocate(16)));
        return params;
    }

    /** A tensor added after two steps starts with a zero buffer: it ends where a fresh optimizer fed the same gradients takes it; a frozen one does not move. */
    @Test
    void lateAndFrozenTensors() {
        Muon config = variant("muon");
        try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(Backend.CPU_FAST).build();
             DeviceOptimizer fresh = DeviceOptimizer.builder(config).optBackend(Backend.CPU).build()) {
            ParamGroup group = opt.addGroup(config);
            List<Parameter> early = register(opt, group, Precision.FP32);
            Parameter frozen = early.get(0);
            frozen.freeze();
            float[] frozenBefore = frozen.param().toArray();
            for (int t = 0; t < 2; t++) {
                feed(early, t);
                opt.step();
            }
            TensorBuffer p = opt.allocate(12);
            p.copyFrom(Scenario.gaussian(new Random(9), 12, 1f));
            Parameter late = group.add("late", p, opt.allocate(12), 3, 4);
            TensorBuffer q = fresh.allocate(12);
            q.copyFrom(Scenario.gaussian(new Random(9), 12, 1f));
            Parameter reference = fresh.addGroup(config).add("late", q, fresh.allocate(12), 3, 4);
            for (int t = 0; t < 2; t++) {
                float[] g = Scenario.gaussian(new Random(77 + t), 12, 1f);
                late.grad().copyFrom(g);
                reference.grad().copyFrom(g);
                feed(early, 2 + t);
                opt.step();
                fresh.step();
            }
            assertArrayEquals(reference.param().toArray(), late.param().toArray(), "late tensor");
            assertArrayEquals(reference.state(StateKind.MOMENTUM_BUFFER).toArray(), late.state(StateKind.MOMENTUM_BUFFER).toArray());
            assertArrayEquals(frozenBefore, frozen.param().toArray(), "frozen tensor");
        }
    }

    /** After warm-up a CPU_FAST Muon step, products on the team and bf16 params among them, allocates nothing. */
    @Test
    void aFastStepAllocatesNothing() {
        Muon config = variant("muon");
        try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(Backend.CPU_FAST).optCpuThreads(3)
                .optMaxGradNorm(1.0).build()) {
            ParamGroup group = opt.addGroup(config);
            for (Precision p : new Precision[] {Precision.FP32, Precision.BF16}) {
                TensorBuffer w = opt.allocate(64 * 96, p), g = opt.allocate(64 * 96, p);
                g.copyFrom(Scenario.gaussian(new Random(3), 64 * 96, 1f));
                group.add("w" + p, w, g, 96, 64);
            }
            FastCpuBackendTest.assertStepsAllocateNothing(opt, 2);
        }
    }

    @Test
    void badInputIsRefusedAndChangesNothing() {
        Muon config = variant("muon");
        try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(Backend.CPU).build()) {
            ParamGroup group = opt.addGroup(config);
            IllegalArgumentException vector = assertThrows(IllegalArgumentException.class,
                    () -> group.add("bias", opt.allocate(6), opt.allocate(6)));
            assertTrue(vector.getMessage().contains("param 'bias' has shape [6], but Muon updates 2-D parameters only"), vector.getMessage());
            IllegalArgumentException cube = assertThrows(IllegalArgumentException.class,
                    () -> group.add("conv", opt.allocate(8), opt.allocate(8), 2, 2, 2));
            assertTrue(cube.getMessage().contains("param 'conv' has shape [2, 2, 2]"), cube.getMessage());
            assertThrows(IllegalArgumentException.class, () -> group.add("w", opt.allocate(6), opt.allocate(6), 4, 2));
            assertEquals(0, group.parameters().size(), "nothing registered");
            Parameter w = group.add("w", opt.allocate(6), opt.allocate(6), 2, 3); // the name was not taken by the refusals

            IllegalArgumentException steps = assertThrows(IllegalArgumentException.class,
                    () -> group.setConfig(config.toBuilder().optNsSteps(6).build()));
            assertTrue(steps.getMessage().contains("runs 6 Newton-Schulz steps in EXACT numerics per step, but this group runs 5"
                    + " Newton-Schulz steps in EXACT numerics"), steps.getMessage());
            assertEquals(config, group.config(), "the group keeps its configuration");
            IllegalArgumentException numerics = assertThrows(IllegalArgumentException.class,
                    () -> group.setConfig(config.toBuilder().optNumerics(Muon.Numerics.FAST).build()));
            assertTrue(numerics.getMessage().contains("runs 5 Newton-Schulz steps in FAST numerics per step"), numerics.getMessage());
            assertEquals(config, group.config(), "the group keeps its configuration");
            group.setConfig(config.toBuilder().optMomentum(0.9).optLrAdjustment(Muon.LrAdjustment.MATCH_RMS_ADAMW).build());
            assertEquals(List.of(StateKind.MOMENTUM_BUFFER), w.stateKinds());
        }
        IllegalArgumentException maximize = assertThrows(IllegalArgumentException.class,
                () -> Muon.builder().optMaximize(true).build());
        assertTrue(maximize.getMessage().contains("Muon has no maximize option"), maximize.getMessage());
        IllegalArgumentException eightBit = assertThrows(IllegalArgumentException.class,
                () -> DeviceOptimizer.builder(config).optBackend(Backend.CPU).optStateQuantization(StateQuantization.BLOCKWISE_8BIT).build()
                        .close());
        assertTrue(eightBit.getMessage().contains("Muon"), eightBit.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Muon.builder().optNumerics(null).build());
    }

    /** Fast mode needs cuBLAS: the CPU backends refuse it in every place a configuration enters, changing nothing. */
    @Test
    void fastModeIsRefusedOnTheCpuBackends() {
        Muon exact = variant("muon");
        Muon fast = exact.toBuilder().optNumerics(Muon.Numerics.FAST).build();
        String reason = "backend has no cuBLAS: Muon's fast mode runs on the CUDA backend only";
        for (Backend backend : new Backend[] {Backend.CPU, Backend.CPU_FAST}) {
            IllegalArgumentException built = assertThrows(IllegalArgumentException.class,
                    () -> DeviceOptimizer.builder(fast).optBackend(backend).build().close());
            assertTrue(built.getMessage().contains("the " + backend + " " + reason), built.getMessage());
            try (DeviceOptimizer opt = DeviceOptimizer.builder(exact).optBackend(backend).build()) {
                IllegalArgumentException added = assertThrows(IllegalArgumentException.class, () -> opt.addGroup(fast));
                assertTrue(added.getMessage().contains(reason), added.getMessage());
                assertEquals(0, opt.groups().size(), "no group added");
                ParamGroup group = opt.addGroup(exact);
                group.add("w", opt.allocate(6), opt.allocate(6), 2, 3);
                assertThrows(IllegalArgumentException.class, () -> group.setConfig(fast));
                assertEquals(exact, group.config(), "the group keeps its configuration");
                opt.step();
            }
        }
    }
}
