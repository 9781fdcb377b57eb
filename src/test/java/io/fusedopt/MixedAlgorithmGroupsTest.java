package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Groups of different algorithms in one optimizer: each tensor ends bit for bit where an optimizer
 * of its group's algorithm alone takes it (an elementwise kernel, a layer-wise one, small tensors
 * that form runs, a tensor of two chunks), on every backend; a checkpoint of them resumes exactly;
 * a group cannot change its algorithm.
 */
class MixedAlgorithmGroupsTest {
    /** The groups: AdamW (the defaults), LAMB, Momentum, Lion, Rprop; a tensor each, one of two chunks, tiny ones. */
    private static final Map<String, OptimizerConfig> GROUPS = new LinkedHashMap<>();
    private static final int[][] SIZES = {{1000, 3}, {1 << 16 | 5}, {4, 4, 700}, {333}, {129}};

    static {
        GROUPS.put("adamw", Adam.adamW().optLearningRate(1e-2).build());
        GROUPS.put("lamb", Lamb.builder().optLearningRate(1e-2).build());
        GROUPS.put("momentum", Momentum.builder().setMomentum(0.9).optLearningRate(1e-2).optNesterov(true).build());
        GROUPS.put("lion", Lion.builder().optLearningRate(1e-3).optWeightDecay(0.1).build());
        GROUPS.put("rprop", Rprop.builder().build());
    }

    private static final int STEPS = 3;

    /** Every param and state after {@code steps} steps of the given groups (all of them: null), by tensor name. */
    private static Map<String, float[]> run(Backend backend, List<String> groups, int steps) {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(GROUPS.get(groups.get(0))).optBackend(backend).build()) {
            List<Parameter> params = register(opt, groups);
            for (int t = 0; t < steps; t++) {
                feed(params, t);
                opt.step();
            }
            return values(params);
        }
    }

    private static List<Parameter> register(DeviceOptimizer opt, List<String> groups) {
        List<Parameter> params = new ArrayList<>();
        for (String name : groups) {
            ParamGroup group = opt.addGroup(GROUPS.get(name));
            int[] sizes = SIZES[new ArrayList<>(GROUPS.keySet()).indexOf(name)];
            for (int i = 0; i < sizes.length; i++) {
                TensorBuffer p = opt.allocate(sizes[i]);
                p.copyFrom(Scenario.gaussian(new Random(name.hashCode() + i), sizes[i], 1f));
                params.add(group.add(name + "." + i, p, opt.allocate(sizes[i])));
            }
        }
        return params;
    }

    /** Step t's gradient of each tensor: a function of its name and t alone. */
    private static void feed(List<Parameter> params, int t) {
        for (Parameter p : params) p.grad().copyFrom(Scenario.gaussian(new Random(31L * p.name().hashCode() + t), (int) p.length(), 1f));
    }

    private static Map<String, float[]> values(List<Parameter> params) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Parameter p : params) {
            out.put(p.name(), p.param().toArray());
            for (StateKind k : p.stateKinds()) out.put(p.name() + "/" + k.stateName(), p.state(k).toArray());
        }
        return out;
    }

    private static void assertSameValues(Map<String, float[]> expected, Map<String, float[]> actual, String what) {
        assertEquals(expected.keySet(), actual.keySet(), what);
        expected.forEach((name, v) -> assertArrayEquals(v, actual.get(name), what + ": " + name));
    }

    private static void eachGroupAsIfAlone(Backend backend) {
        Map<String, float[]> together = run(backend, List.copyOf(GROUPS.keySet()), STEPS);
        Map<String, float[]> alone = new LinkedHashMap<>();
        for (String name : GROUPS.keySet()) alone.putAll(run(Backend.CPU, List.of(name), STEPS));
        assertSameValues(alone, together, backend + ", five algorithms in one optimizer");
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void eachGroupEndsWhereItsAlgorithmAloneTakesIt(Backend backend) {
        eachGroupAsIfAlone(backend);
    }

    @Test
    @Tag("gpu")
    void eachGroupEndsWhereItsAlgorithmAloneTakesItOnCuda() {
        GpuTests.assumeGpu();
        eachGroupAsIfAlone(Backend.CUDA);
    }

    @Test
    void aCheckpointOfMixedGroupsResumesExactly() throws IOException {
        List<String> all = List.copyOf(GROUPS.keySet());
        byte[] saved;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(GROUPS.get("adamw")).optBackend(Backend.CPU).build()) {
            List<Parameter> params = register(opt, all);
            for (int t = 0; t < 2; t++) {
                feed(params, t);
                opt.step();
            }
            saved = opt.saveToBytes();
        }
        try (DeviceOptimizer opt = DeviceOptimizer.builder(GROUPS.get("adamw")).optBackend(Backend.CPU_FAST).build()) {
            List<Parameter> params = register(opt, all);
            opt.load(saved);
            for (int t = 2; t < STEPS; t++) {
                feed(params, t);
                opt.step();
            }
            assertSameValues(run(Backend.CPU, all, STEPS), values(params), "resumed");
            assertTrue(opt.toString().contains("adam + lamb + momentum + lion + rprop"), opt.toString());
        }
    }

    @Test
    void aGroupKeepsItsAlgorithmAndEightBitOptimizersTakeOnlyAlgorithmsWithAnEightBitForm() {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(GROUPS.get("adamw")).optBackend(Backend.CPU).build()) {
            ParamGroup lamb = opt.addGroup(GROUPS.get("lamb"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> lamb.setConfig(GROUPS.get("adamw")));
            assertTrue(e.getMessage().contains("runs lamb; a new configuration cannot change its algorithm to adam"), e.getMessage());
            assertEquals(GROUPS.get("lamb"), lamb.config());
        }
        try (DeviceOptimizer opt = DeviceOptimizer.builder(GROUPS.get("adamw")).optBackend(Backend.CPU)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT).build()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.addGroup(GROUPS.get("lamb")));
            assertTrue(e.getMessage().contains("Lamb has no form of"), e.getMessage());
            assertEquals(0, opt.groups().size());
            opt.addGroup(Sgd.builder().build()).add("w", opt.allocate(5000), opt.allocate(5000)); // no states: it may join
            opt.addGroup(GROUPS.get("momentum")).add("m", opt.allocate(5000), opt.allocate(5000));
            opt.step();
        }
    }
}
