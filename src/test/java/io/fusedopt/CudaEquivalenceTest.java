package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
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
        return Variants.all().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
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
