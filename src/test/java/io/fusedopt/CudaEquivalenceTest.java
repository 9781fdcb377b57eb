package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bit-exact contract: for every variant, after many steps on random data of awkward sizes, in
 * two groups, across a learning-rate change, every parameter and state element computed by CUDA
 * equals the CPU reference bit for bit. Skipped, with the probe's reason, where no GPU is usable.
 */
@Tag("gpu")
class CudaEquivalenceTest {
    static final int[] SIZES = {1, 3, 1023, (1 << 20) + 7};
    static final int STEPS = 12;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    static Stream<Arguments> variants() {
        return Variants.elementwise().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void cudaEqualsTheCpuReferenceBitForBit(String name, OptimizerConfig config) {
        long seed = name.hashCode() * 31L + 17;
        try (DeviceOptimizer cpu = DeviceOptimizer.create(Backend.CPU, config);
             DeviceOptimizer cuda = DeviceOptimizer.create(Backend.CUDA, config)) {
            Run a = new Run(cpu, config);
            Run b = new Run(cuda, config);
            Random random = new Random(seed);
            List<float[]> initial = new ArrayList<>();
            for (int size : SIZES) initial.add(gaussian(random, size, 1f));
            a.register(initial);
            b.register(initial);
            for (int t = 1; t <= STEPS; t++) {
                if (t == STEPS / 2) { // a schedule: the scalars must follow on both sides
                    a.scaleLearningRates(0.5);
                    b.scaleLearningRates(0.5);
                }
                List<float[]> grads = new ArrayList<>();
                for (int size : SIZES) grads.add(gaussian(random, size, t % 3 == 0 ? 1e-3f : 1f));
                a.step(grads);
                b.step(grads);
            }
            String where = name + " (seed " + seed + ")";
            for (int i = 0; i < a.params.size(); i++) {
                Parameter pa = a.params.get(i);
                Parameter pb = b.params.get(i);
                assertBitEqual(pa.param().toArray(), pb.param().toArray(), where + " param " + pa.name());
                for (StateKind kind : pa.stateKinds()) {
                    assertBitEqual(pa.state(kind).toArray(), pb.state(kind).toArray(),
                            where + " " + kind.stateName() + " of " + pa.name());
                }
            }
        }
    }

    /**
     * One launch per kernel kind over 1500 tensors in 40 groups (all groups in one device table),
     * both momentum forms in one optimizer: CUDA equals the reference bit for bit.
     */
    @Test
    void manyTensorsInManyGroupsEqualTheReference() {
        Random random = new Random(77);
        int tensors = 1500, groups = 40;
        int[] sizes = new int[tensors];
        List<float[]> initial = new ArrayList<>();
        for (int i = 0; i < tensors; i++) {
            sizes[i] = i % 300 == 1 ? (1 << 17) + 5 : 1 + random.nextInt(i % 2 == 0 ? 5000 : 7);
            initial.add(gaussian(random, sizes[i], 1f));
        }
        Momentum base = Momentum.builder().optLearningRate(0.01).setMomentum(0.9).build();
        List<List<Parameter>> both = new ArrayList<>();
        List<List<TensorBuffer>> gradBuffers = new ArrayList<>();
        try (DeviceOptimizer cpu = DeviceOptimizer.create(Backend.CPU, base);
             DeviceOptimizer cuda = DeviceOptimizer.create(Backend.CUDA, base)) {
            for (DeviceOptimizer opt : List.of(cpu, cuda)) {
                List<ParamGroup> gs = new ArrayList<>();
                for (int g = 0; g < groups; g++) {
                    Momentum.Builder b = base.toBuilder().optLearningRate(0.01 * (1 + g % 5)).optNesterov(g % 3 == 0);
                    gs.add(opt.addGroup(g % 2 == 0 ? b.build() : b.optForm(Momentum.Form.VELOCITY).build()));
                }
                List<Parameter> params = new ArrayList<>();
                List<TensorBuffer> grads = new ArrayList<>();
                for (int i = 0; i < tensors; i++) {
                    TensorBuffer p = opt.allocate(sizes[i]);
                    TensorBuffer g = opt.allocate(sizes[i]);
                    p.copyFrom(initial.get(i));
                    params.add(gs.get(i % groups).add("t" + i, p, g));
                    grads.add(g);
                }
                both.add(params);
                gradBuffers.add(grads);
            }
            for (int step = 0; step < 4; step++) {
                for (int i = 0; i < tensors; i++) {
                    float[] g = gaussian(random, sizes[i], 1f);
                    gradBuffers.get(0).get(i).copyFrom(g);
                    gradBuffers.get(1).get(i).copyFrom(g);
                }
                cpu.step();
                cuda.step();
            }
            for (int i = 0; i < tensors; i++) {
                Parameter a = both.get(0).get(i);
                Parameter b = both.get(1).get(i);
                assertBitEqual(a.param().toArray(), b.param().toArray(), "tensor " + i + " (" + sizes[i] + " elements)");
                StateKind kind = a.stateKinds().get(0);
                assertBitEqual(a.state(kind).toArray(), b.state(kind).toArray(), kind.stateName() + " of tensor " + i);
            }
        }
    }

    /** One optimizer with the test's tensors: sizes alternate between two groups with different hyper-parameters. */
    private static final class Run {
        final DeviceOptimizer opt;
        final List<ParamGroup> groups = new ArrayList<>();
        final List<Parameter> params = new ArrayList<>();
        final List<TensorBuffer> gradBuffers = new ArrayList<>();

        Run(DeviceOptimizer opt, OptimizerConfig config) {
            this.opt = opt;
            groups.add(opt.addGroup());
            groups.add(opt.addGroup(config.withLearningRate(config.learningRate() * 0.25)));
        }

        void register(List<float[]> initial) {
            for (int i = 0; i < initial.size(); i++) {
                TensorBuffer p = opt.allocate(initial.get(i).length);
                TensorBuffer g = opt.allocate(initial.get(i).length);
                p.copyFrom(initial.get(i));
                params.add(groups.get(i % 2).add("t" + i, p, g));
                gradBuffers.add(g);
            }
        }

        void scaleLearningRates(double factor) {
            for (ParamGroup group : groups) group.setLearningRate(group.config().learningRate() * factor);
        }

        void step(List<float[]> grads) {
            for (int i = 0; i < grads.size(); i++) gradBuffers.get(i).copyFrom(grads.get(i));
            opt.step();
        }
    }

    static float[] gaussian(Random random, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian() * scale;
        return v;
    }

    static void assertBitEqual(float[] expected, float[] actual, String label) {
        assertEquals(expected.length, actual.length, label + " length");
        int mismatches = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                if (first < 0) first = i;
                mismatches++;
            }
        }
        if (mismatches > 0) {
            throw new AssertionError(label + ": " + mismatches + " of " + expected.length + " elements differ; first at "
                    + first + ": cpu " + expected[first] + " (0x" + Integer.toHexString(Float.floatToIntBits(expected[first]))
                    + ") vs cuda " + actual[first] + " (0x" + Integer.toHexString(Float.floatToIntBits(actual[first])) + ")");
        }
    }
}
