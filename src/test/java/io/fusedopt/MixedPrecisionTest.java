package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.cpu.ReferenceKernels;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.FactoredKernel;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.TensorNorms;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdatePlan;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * Mixed-precision storage on the CPU backend, held against an element-by-element simulation
 * written from the rule alone (widen exactly, update in float32 with the reference kernels, round
 * to nearest even on store), for every variant and storage combination, on a tensor that spans
 * two chunks.
 */
class MixedPrecisionTest {
    private static final int N = 70_001; // more than one 2^16 chunk, not a multiple of the vector widths
    private static final int STEPS = 5;

    static List<Object[]> cases() {
        List<Object[]> cases = new ArrayList<>();
        Precision[][] combos = {
            {Precision.BF16, Precision.BF16, Precision.FP32}, {Precision.BF16, Precision.FP32, Precision.BF16},
            {Precision.FP16, Precision.FP16, Precision.FP32}, {Precision.FP32, Precision.BF16, Precision.BF16},
            {Precision.BF16, Precision.BF16, Precision.BF16}};
        for (Map.Entry<String, OptimizerConfig> v : Variants.elementwise().entrySet()) {
            for (int c = 0; c < combos.length; c++) {
                Precision[] combo = combos[c];
                for (boolean master : new boolean[] {true, false}) {
                    if (!master && combo[0] == Precision.FP32) continue;
                    if (c % 2 == 1 && !master && !v.getKey().startsWith("adam")) continue; // keep the matrix moderate
                    cases.add(new Object[] {v.getKey(), v.getValue(), combo[0], combo[1], combo[2], master});
                }
            }
        }
        return cases;
    }

    @ParameterizedTest(name = "{0} param {2} grad {3} state {4} master {5}")
    @MethodSource("cases")
    void updatesFollowTheWidenUpdateRoundRule(String name, OptimizerConfig config, Precision param, Precision grad,
                                              Precision state, boolean master) {
        Random random = new Random(name.hashCode() + param.ordinal() * 7 + grad.ordinal() * 3 + state.ordinal());
        float[] initial = Scenario.gaussian(random, N, 1f);
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < STEPS; t++) grads.add(Scenario.gaussian(random, N, t == 2 ? 1e-3f : 1f));

        Simulation expected = Simulation.run(config, param, grad, state, master, initial, grads);
        try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(Backend.CPU).optStatePrecision(state)
                .optMasterWeights(master).build()) {
            TensorBuffer p = opt.allocate(N, param);
            TensorBuffer g = opt.allocate(N, grad);
            p.copyFrom(initial);
            Parameter w = opt.addGroup().add("w", p, g);
            for (float[] step : grads) {
                g.copyFrom(step);
                opt.step();
            }
            CudaEquivalenceTest.assertBitEqual(expected.param, p.toArray(), name + " param");
            boolean hasMaster = master && param != Precision.FP32;
            assertEquals(hasMaster, w.masterWeights().isPresent());
            if (hasMaster) {
                float[] m = w.masterWeights().get().toArray();
                CudaEquivalenceTest.assertBitEqual(expected.master, m, name + " master");
                float[] rounded = new float[N];
                for (int i = 0; i < N; i++) rounded[i] = round(m[i], param);
                CudaEquivalenceTest.assertBitEqual(rounded, p.toArray(), name + " param is the master rounded");
            }
            List<StateKind> kinds = w.stateKinds();
            for (int j = 0; j < kinds.size(); j++) {
                CudaEquivalenceTest.assertBitEqual(expected.states.get(kinds.get(j)), w.state(kinds.get(j)).toArray(),
                        name + " " + kinds.get(j).stateName());
                assertEquals(state, w.state(kinds.get(j)).precision());
            }
        }
    }

    @Test
    void masterWeightsMakeA16BitRunFollowTheFloat32Trajectory() {
        // With bf16-representable data, the fp32 master of a bf16 param follows exactly the fp32 run.
        OptimizerConfig adam = Adam.adamW().optLearningRate(1e-3).build();
        Random random = new Random(5);
        float[] initial = roundAll(Scenario.gaussian(random, 1000, 1f), Precision.BF16);
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < 20; t++) grads.add(roundAll(Scenario.gaussian(random, 1000, 1f), Precision.BF16));
        float[] fp32 = Trajectory.cpu(adam, initial, grads);
        try (DeviceOptimizer opt = DeviceOptimizer.builder(adam).optBackend(Backend.CPU).build()) {
            TensorBuffer p = opt.allocate(1000, Precision.BF16);
            TensorBuffer g = opt.allocate(1000, Precision.BF16);
            p.copyFrom(initial);
            Parameter w = opt.addGroup().add("w", p, g);
            for (float[] grad : grads) {
                g.copyFrom(grad);
                opt.step();
            }
            CudaEquivalenceTest.assertBitEqual(fp32, w.masterWeights().orElseThrow().toArray(), "master vs fp32 run");
        }
    }

    @Test
    void withoutMasterWeightsSmallUpdatesAreLostAsDocumented() {
        Sgd sgd = Sgd.builder().optLearningRate(1e-4).build();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(sgd).optBackend(Backend.CPU).optMasterWeights(false).build()) {
            TensorBuffer p = opt.allocate(1, Precision.BF16);
            TensorBuffer g = opt.allocate(1, Precision.BF16);
            p.copyFrom(new float[] {1f});
            g.copyFrom(new float[] {1f});
            Parameter w = opt.addGroup().add("w", p, g);
            assertFalse(w.masterWeights().isPresent());
            for (int t = 0; t < 10; t++) opt.step();
            assertEquals(1f, p.toArray()[0], "1 - 1e-4 rounds back to 1 in bf16 every step");
        }
        try (DeviceOptimizer opt = DeviceOptimizer.builder(sgd).optBackend(Backend.CPU).build()) {
            TensorBuffer p = opt.allocate(1, Precision.BF16);
            TensorBuffer g = opt.allocate(1, Precision.BF16);
            p.copyFrom(new float[] {1f});
            g.copyFrom(new float[] {1f});
            opt.addGroup().add("w", p, g);
            for (int t = 0; t < 100; t++) opt.step();
            assertTrue(p.toArray()[0] < 1f, "with a master the small steps accumulate");
        }
    }

    @Test
    void fp16StatesAreRefusedAndBuffersReportTheirFormat() {
        assertThrows(IllegalArgumentException.class,
                () -> DeviceOptimizer.builder(Sgd.builder().build()).optStatePrecision(Precision.FP16));
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().build())) {
            TensorBuffer b = opt.allocate(3, Precision.FP16);
            assertEquals(Precision.FP16, b.precision());
            b.copyFrom(new float[] {65504f, 70000f, 1e-8f});
            float[] back = b.toArray();
            assertEquals(65504f, back[0]);
            assertEquals(Float.POSITIVE_INFINITY, back[1]);
            assertEquals(Conversions.fp16ToFloat(Conversions.floatToFp16(1e-8f)), back[2]);
            assertEquals(6, opt.ownedBytes());
        }
    }

    static float round(float v, Precision p) {
        return switch (p) {
            case FP32 -> v;
            case BF16 -> Conversions.bf16ToFloat(Conversions.floatToBf16(v));
            case FP16 -> Conversions.fp16ToFloat(Conversions.floatToFp16(v));
        };
    }

    static float[] roundAll(float[] v, Precision p) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = round(v[i], p);
        return out;
    }

    /** The rule, element by element, one group, with the reference kernels on one-element buffers. */
    static final class Simulation {
        float[] param;
        float[] master;
        final Map<StateKind, float[]> states = new java.util.LinkedHashMap<>();

        static Simulation run(OptimizerConfig config, Precision paramP, Precision gradP, Precision stateP, boolean withMaster,
                              float[] initial, List<float[]> grads) {
            UpdatePlan plan = UpdatePlan.of(config);
            boolean hasMaster = withMaster && paramP != Precision.FP32;
            int n = initial.length;
            Simulation s = new Simulation();
            s.param = roundAll(initial, paramP);
            s.master = hasMaster ? s.param.clone() : null;
            StateKind[] slots = plan.slots();
            float[][] slotValues = new float[3][];
            List<StateKind> kept = UpdatePlan.stateKinds(config, new long[] {n}); // a vector's (Adafactor: its variance only)
            for (int j = 0; j < slots.length; j++) {
                if (slots[j] == null || !kept.contains(slots[j])) continue;
                float[] init = new float[n];
                java.util.Arrays.fill(init, round(UpdatePlan.initialValue(config, slots[j]), stateP));
                slotValues[j] = init;
            }
            float[] scalars = new float[StepScalars.SCALAR_STRIDE];
            FloatBuffer[] one = new FloatBuffer[5];
            for (int j = 0; j < 5; j++) one[j] = FloatBuffer.allocate(1);
            for (int t = 1; t <= grads.size(); t++) {
                StepScalars.compute(config, t, scalars);
                int flags = plan.staticFlags() | (t == 1 ? KernelFlags.FIRST_STEP : 0);
                float[] g = grads.get(t - 1);
                if (plan.kernel() instanceof FactoredKernel factored) {
                    // The whole tensor at once, widened (the master instead of the param), then rounded as stored.
                    float[] p = (hasMaster ? s.master : s.param).clone();
                    float[] widenedGrad = new float[n];
                    for (int i = 0; i < n; i++) widenedGrad[i] = round(g[i], gradP);
                    factored.step(new FactoredKernel.Tensor(new long[] {n}, n, p, widenedGrad, slotValues, new float[n], stateP),
                            scalars, flags);
                    for (int i = 0; i < n; i++) {
                        if (hasMaster) s.master[i] = p[i];
                        s.param[i] = round(p[i], paramP);
                        for (float[] state : slotValues) if (state != null) state[i] = round(state[i], stateP);
                    }
                    continue;
                }
                if (plan.kernel() instanceof LayerwiseKernel layerwise) {
                    // The norm pass over the widened operands, then the tensor's own scalars.
                    float[] a = new float[n], b = new float[n], ai = new float[1], bi = new float[1];
                    for (int i = 0; i < n; i++) {
                        layerwise.normInputs(s.operands(one, i, hasMaster, round(g[i], gradP), slotValues), 0, 0, 1, scalars, flags, ai, bi);
                        a[i] = ai[0];
                        b[i] = bi[0];
                    }
                    layerwise.tensorScalars(TensorNorms.sumOfSquares(a), TensorNorms.sumOfSquares(b), scalars, flags);
                }
                for (int i = 0; i < n; i++) {
                    FloatBuffer[] o = s.operands(one, i, hasMaster, round(g[i], gradP), slotValues);
                    ReferenceKernels.run(plan.kernel(), o, 0, 1, scalars, flags);
                    float p = one[0].get(0);
                    if (hasMaster) s.master[i] = p;
                    s.param[i] = round(p, paramP);
                    for (int j = 0; j < slots.length; j++) {
                        if (slotValues[j] != null) slotValues[j][i] = round(one[2 + j].get(0), stateP);
                    }
                }
            }
            for (int j = 0; j < slots.length; j++) if (slotValues[j] != null) s.states.put(slots[j], slotValues[j]);
            return s;
        }

        /** Element i's kernel operands as the mixed kernels widen them, in the one-element buffers {@code one}. */
        private FloatBuffer[] operands(FloatBuffer[] one, int i, boolean hasMaster, float grad, float[][] slotValues) {
            one[0].put(0, hasMaster ? master[i] : param[i]);
            one[1].put(0, grad);
            FloatBuffer[] o = new FloatBuffer[5];
            o[0] = one[0];
            o[1] = one[1];
            for (int j = 0; j < 3; j++) {
                if (slotValues[j] == null) continue;
                one[2 + j].put(0, slotValues[j][i]);
                o[2 + j] = one[2 + j];
            }
            return o;
        }
    }
}
