package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.cuda.CudaEngine;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link DeviceOptimizer#zeroGrad()}: every registered gradient of every format becomes +0 and
 * nothing else changes (params, master weights, states, unregistered buffers, the bytes around a
 * wrapped gradient); on CUDA one engine launch per call, ordered with queued steps and captured
 * replays; the fill follows registration. On both CPU backends and (tagged gpu) on CUDA.
 */
class ZeroGradTest {
    private static final Precision[] FORMATS = {Precision.FP32, Precision.BF16, Precision.FP16};
    /** Around the 16-byte boundaries of the fill and its chunks of 2^16 16-bit units. */
    private static final int[] SIZES = {1, 3, 8, 17, (1 << 15) + 1, (1 << 16) + 3, (1 << 17) + 9};

    /** Tensors whose grads cycle through the three formats (params through them shifted by one), and bystanders. */
    static final class Model implements AutoCloseable {
        final DeviceOptimizer opt;
        final List<Parameter> params = new ArrayList<>();
        final List<TensorBuffer> bystanders = new ArrayList<>();

        Model(Backend backend, long seed) {
            opt = DeviceOptimizer.builder(Adam.adamW().optLearningRate(1e-2).build()).optBackend(backend)
                    .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
            ParamGroup group = opt.addGroup();
            Random random = new Random(seed);
            for (int i = 0; i < SIZES.length; i++) {
                int n = SIZES[i];
                TensorBuffer p = opt.allocate(n, FORMATS[(i + 1) % 3]);
                p.copyFrom(Scenario.gaussian(random, n, 1f));
                params.add(group.add("t" + i, p, opt.allocate(n, FORMATS[i % 3])));
            }
            for (Precision f : FORMATS) {
                TensorBuffer b = opt.allocate(1000, f); // allocated beside the grads, registered as nothing
                b.copyFrom(Scenario.gaussian(random, 1000, 1f));
                bystanders.add(b);
            }
        }

        void writeGradients(int t) {
            Random random = new Random(1000 + t);
            for (Parameter p : params) p.grad().copyFrom(Scenario.gaussian(random, (int) p.length(), 1f));
        }

        /** Everything but the grads. */
        Map<String, float[]> others() {
            Map<String, float[]> out = new LinkedHashMap<>();
            for (Parameter p : params) {
                out.put(p.name() + "/param", p.param().toArray());
                p.masterWeights().ifPresent(m -> out.put(p.name() + "/master", m.toArray()));
                for (StateKind k : p.stateKinds()) out.put(p.name() + "/" + k.stateName(), p.state(k).toArray());
            }
            for (int i = 0; i < bystanders.size(); i++) out.put("bystander " + FORMATS[i], bystanders.get(i).toArray());
            return out;
        }

        void assertGradsZero(String label) {
            for (Parameter p : params) assertAllPositiveZero(p.grad().toArray(), label + ": grad of " + p.name() + " (" + p.grad().precision() + ")");
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    static void assertAllPositiveZero(float[] values, String label) {
        for (int i = 0; i < values.length; i++) {
            if (Float.floatToRawIntBits(values[i]) != 0) throw new AssertionError(label + ": element " + i + " is " + values[i]);
        }
    }

    static Stream<Backend> hostBackends() {
        return Stream.of(Backend.CPU, Backend.CPU_FAST);
    }

    // ---- every grad of every format, and nothing else ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void zeroesEveryGradAndNothingElse(Backend backend) {
        zeroesGrads(backend);
    }

    @Test
    @Tag("gpu")
    void zeroesEveryGradAndNothingElseInOneLaunchOnCuda() {
        GpuTests.assumeGpu();
        zeroesGrads(Backend.CUDA);
    }

    private void zeroesGrads(Backend backend) {
        try (Model m = new Model(backend, 1)) {
            m.writeGradients(1);
            m.opt.step();
            m.writeGradients(2);
            Map<String, float[]> before = m.others();
            long launches = launches(m.opt);
            m.opt.zeroGrad();
            m.assertGradsZero(backend.toString());
            OptimizerStateTest.assertSameTensors(before, m.others(), "zeroGrad touches only the grads");
            if (backend == Backend.CUDA) assertEquals(launches + 1, launches(m.opt), "one launch for every grad of every format");
            m.writeGradients(3);
            m.opt.zeroGrad(); // the prepared fill again
            m.assertGradsZero("second zeroGrad");
            if (backend == Backend.CUDA) assertEquals(launches + 2, launches(m.opt), "one launch per zeroGrad");
        }
    }

    /** Launches the CUDA engine issued itself (zero fills); 0 on the CPU backends. */
    static long launches(DeviceOptimizer opt) {
        return opt.engine() instanceof CudaEngine cuda ? cuda.engineLaunches() : 0;
    }

    // ---- ordered with steps and captured replays ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void zeroGradBetweenStepsAndReplaysEqualsWritingZeros(Backend backend) {
        betweenSteps(backend);
    }

    @Test
    @Tag("gpu")
    void zeroGradBetweenStepsAndReplaysEqualsWritingZerosOnCuda() {
        GpuTests.assumeGpu();
        betweenSteps(Backend.CUDA);
    }

    /**
     * Steps and replays of a captured step with zeroGrad between them, nothing waited for, equal
     * the CPU reference that writes zeros from the host instead: so the fill runs after the work
     * queued before it and before the work queued after it. Zero gradients still move Adam's params
     * (through the moments), so an unordered fill would show.
     */
    private void betweenSteps(Backend backend) {
        Map<String, float[]> expected;
        try (Model reference = new Model(Backend.CPU, 1)) {
            for (int t = 0; t < 6; t++) {
                if (t % 2 == 0) {
                    reference.writeGradients(t);
                } else {
                    for (Parameter p : reference.params) p.grad().copyFrom(new float[(int) p.length()]);
                }
                reference.opt.step();
            }
            expected = reference.others();
        }
        try (Model m = new Model(backend, 1)) {
            long launches = launches(m.opt);
            m.writeGradients(0);
            m.opt.step();
            m.opt.zeroGrad();
            m.opt.step();
            StepGraph graph = m.opt.captureStep();
            for (int t = 2; t < 6; t++) {
                if (t % 2 == 0) m.writeGradients(t);
                graph.replay();
                m.opt.zeroGrad(); // after the replay, on the same stream
            }
            m.assertGradsZero(backend + " after the last replay");
            OptimizerStateTest.assertSameTensors(expected, m.others(), backend + " with zeroGrad between steps and replays");
            assertEquals(6, m.opt.stepCount());
            if (backend == Backend.CUDA) assertEquals(launches + 5, launches(m.opt), "one launch per zeroGrad");
        }
    }

    // ---- registration and wrapped memory ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void theFillFollowsRegistrationAndZeroesWrappedMemoryInPlace(Backend backend) {
        float[] caller = new float[12];
        java.util.Arrays.fill(caller, 5f);
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().build())) {
            ParamGroup group = opt.addGroup();
            opt.zeroGrad(); // nothing registered: nothing to do
            TensorBuffer g1 = opt.allocate(4, Precision.BF16);
            g1.copyFrom(new float[] {1, 2, 3, 4});
            group.add("a", opt.allocate(4, Precision.BF16), g1);
            opt.zeroGrad();
            assertAllPositiveZero(g1.toArray(), "a");
            // Registered after a zeroGrad (registration is still open): the next zeroGrad covers it.
            TensorBuffer g2 = opt.wrapHost(FloatBuffer.wrap(caller, 1, 10).slice());
            group.add("b", opt.wrapHost(new float[10]), g2);
            g1.copyFrom(new float[] {1, 2, 3, 4});
            opt.zeroGrad();
            assertAllPositiveZero(g1.toArray(), "a again");
            assertAllPositiveZero(java.util.Arrays.copyOfRange(caller, 1, 11), "the caller's array, in place");
            assertEquals(5f, caller[0], "before the wrapped range");
            assertEquals(5f, caller[11], "after the wrapped range");
        }
    }

    @Test
    @Tag("gpu")
    void theFillFollowsRegistrationAndZeroesWrappedDeviceMemoryOnCuda() {
        GpuTests.assumeGpu();
        int n = 37;
        try (CallerContext context = new CallerContext(0); CallerContext.Allocation memory = context.allocate(2L * (n + 8));
             DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Sgd.builder().build())) {
            ParamGroup group = opt.addGroup();
            opt.zeroGrad();
            assertEquals(0, launches(opt), "nothing registered: no launch");
            // The whole allocation, unregistered, to see the bytes around the wrapped gradient.
            TensorBuffer whole = opt.wrapDevicePointer(memory.address(), n + 8, Precision.BF16);
            float[] ones = new float[n + 8];
            java.util.Arrays.fill(ones, 1f);
            whole.copyFrom(ones);
            TensorBuffer g1 = opt.allocate(3, Precision.FP16);
            g1.copyFrom(new float[] {1, 2, 3});
            group.add("a", opt.allocate(3, Precision.FP16), g1);
            opt.zeroGrad();
            assertAllPositiveZero(g1.toArray(), "a");
            // 2 bytes past a 16-byte boundary: the fill's unaligned head and tail.
            TensorBuffer g2 = opt.wrapDevicePointer(memory.address() + 2, n, Precision.BF16);
            group.add("b", opt.allocate(n, Precision.BF16), g2);
            g1.copyFrom(new float[] {1, 2, 3});
            opt.zeroGrad();
            assertEquals(2, launches(opt), "one launch per zeroGrad, before and after the registration changed");
            assertAllPositiveZero(g1.toArray(), "a again");
            float[] after = whole.toArray();
            assertAllPositiveZero(java.util.Arrays.copyOfRange(after, 1, n + 1), "the caller's memory, in place");
            assertEquals(1f, after[0], "before the wrapped range");
            for (int i = n + 1; i < after.length; i++) assertEquals(1f, after[i], "after the wrapped range, element " + i);
        }
    }

    // ---- refused ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void zeroGradOnAClosedOptimizerIsRefused(Backend backend) {
        DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().build());
        opt.addGroup().add("a", opt.allocate(3), opt.allocate(3));
        opt.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, opt::zeroGrad);
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }
}
