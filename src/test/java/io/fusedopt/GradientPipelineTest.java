package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.GradientStatistics;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The gradient pipeline on the CPU backend: loss-scale unscaling, the skip-on-non-finite rule
 * (across all tensors, the whole step untouched, the caller can read it), the THROW and PROPAGATE
 * policies, global-norm clipping, and replays of a captured step.
 */
class GradientPipelineTest {
    private static final int[] SIZES = {1, 70_000, 5, 1023};

    @Test
    void aNonFiniteGradientAnywhereSkipsTheWholeStep() {
        Momentum momentum = Momentum.builder().optLearningRate(0.1).setMomentum(0.9).build();
        Scenario clean = Scenario.of(momentum, SIZES).pipeline(NonFinitePolicy.SKIP_STEP, 0, 1, -1);
        Scenario.Result skipped = clean.pipeline(NonFinitePolicy.SKIP_STEP, 0, 1, 3).run(Backend.CPU);
        StepReport third = skipped.reports().get(2);
        assertTrue(third.skipped() && third.foundNonFinite(), "step 3 is reported skipped: " + third);
        assertEquals(2, third.step());
        assertEquals(1, third.skippedSteps());
        assertEquals(5, skipped.reports().get(5).step(), "6 steps, one skipped");
        assertFalse(skipped.reports().get(3).skipped());

        // The same data without the bad step's update: params and states equal a run that never saw step 3.
        try (DeviceOptimizer a = build(momentum, NonFinitePolicy.SKIP_STEP); DeviceOptimizer b = build(momentum, NonFinitePolicy.SKIP_STEP)) {
            TensorBuffer[] pa = register(a), pb = register(b);
            Random random = new Random(3);
            for (int t = 1; t <= 4; t++) {
                float[][] g = grads(random);
                feed(a, g);
                a.step();
                if (t == 2) {
                    float[][] bad = grads(random);
                    bad[1][12345] = Float.NaN;
                    feed(b, bad);
                    b.step(); // skipped: changes nothing, not even the first-step rule of the momentum buffer
                    assertTrue(b.lastStep().skipped());
                }
                feed(b, g);
                b.step();
            }
            for (int i = 0; i < SIZES.length; i++) {
                CudaEquivalenceTest.assertBitEqual(pa[2 * i].toArray(), pb[2 * i].toArray(), "param " + i);
            }
            assertEquals(4, a.stepCount());
            assertEquals(4, b.stepCount());
            assertEquals(1, b.lastStep().skippedSteps());
        }
    }

    @Test
    void throwPolicyThrowsAndLeavesEverythingUntouched() {
        Adam adam = Adam.builder().optLearningRate(0.01).build();
        try (DeviceOptimizer opt = build(adam, NonFinitePolicy.THROW)) {
            TensorBuffer[] buffers = register(opt);
            Random random = new Random(9);
            feed(opt, grads(random));
            opt.step();
            float[] before = buffers[2].toArray();
            float[][] bad = grads(random);
            bad[3][7] = Float.NEGATIVE_INFINITY;
            feed(opt, bad);
            NonFiniteGradientException e = assertThrows(NonFiniteGradientException.class, opt::step);
            assertTrue(e.getMessage().contains("step 2 was skipped"), e.getMessage());
            assertEquals(Float.POSITIVE_INFINITY, e.report().gradNorm());
            CudaEquivalenceTest.assertBitEqual(before, buffers[2].toArray(), "param after the refused step");
            assertEquals(1, opt.stepCount());
            feed(opt, grads(random));
            opt.step(); // still usable
            assertEquals(2, opt.stepCount());
            assertThrows(IllegalStateException.class, opt::captureStep);
        }
    }

    @Test
    void propagateIsTheDefaultAndLetsNaNThrough() {
        Sgd sgd = Sgd.builder().optLearningRate(0.1).build();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, sgd)) {
            assertEquals(NonFinitePolicy.PROPAGATE, opt.nonFinitePolicy());
            TensorBuffer p = opt.allocate(2), g = opt.allocate(2);
            opt.addGroup().add("w", p, g);
            g.copyFrom(new float[] {Float.NaN, 1f});
            opt.step();
            assertTrue(Float.isNaN(p.toArray()[0]));
            assertEquals(-0.1f, p.toArray()[1]);
            StepReport r = opt.lastStep();
            assertFalse(r.skipped());
            assertTrue(Float.isNaN(r.gradNorm()), "not checked, so unknown");
        }
    }

    @Test
    void unscalingByAPowerOfTwoEqualsTheUnscaledRunExactly() {
        for (OptimizerConfig config : Variants.elementwise().values()) {
            Scenario plain = Scenario.of(config, SIZES);
            Scenario scaled = plain.pipeline(NonFinitePolicy.PROPAGATE, 0, 65536, -1);
            Scenario.Result a = plain.run(Backend.CPU);
            Scenario.Result b = scaled.run(Backend.CPU);
            for (int i = 0; i < a.values().size(); i++) {
                CudaEquivalenceTest.assertBitEqual(a.values().get(i), b.values().get(i), config + " " + a.labels().get(i));
            }
        }
    }

    @Test
    void clippingScalesTheGradientByMaxNormOverTheGlobalNorm() {
        Sgd sgd = Sgd.builder().optLearningRate(1).build();
        Random random = new Random(11);
        float[][] g = grads(random);
        BigDecimal exact = BigDecimal.ZERO;
        for (float[] t : g) for (float x : t) exact = exact.add(new BigDecimal(x).multiply(new BigDecimal(x)));
        double norm = Math.sqrt(exact.doubleValue());
        double maxNorm = norm / 4;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(sgd).optBackend(Backend.CPU).optMaxGradNorm(maxNorm).build()) {
            TensorBuffer[] buffers = register(opt, 0f);
            feed(opt, g);
            opt.step();
            StepReport r = opt.lastStep();
            assertEquals(norm, r.gradNorm(), norm * 1e-6, "global norm over all tensors");
            assertEquals((float) (maxNorm / (r.gradNorm() + 1e-6)), r.clipCoefficient(), 1e-6f);
            for (int i = 0; i < SIZES.length; i++) {
                float[] p = buffers[2 * i].toArray();
                for (int k = 0; k < p.length; k++) {
                    assertEquals(-(g[i][k] * r.clipCoefficient()), p[k], "p = 0 - 1 * (g * clip), tensor " + i);
                }
            }
        }
        // Under the threshold nothing is multiplied: identical to no clipping at all.
        Scenario plain = Scenario.of(Adam.builder().build(), SIZES);
        Scenario.Result a = plain.run(Backend.CPU);
        Scenario.Result b = plain.pipeline(NonFinitePolicy.PROPAGATE, 1e9, 1, -1).run(Backend.CPU);
        for (int i = 0; i < a.values().size(); i++) {
            CudaEquivalenceTest.assertBitEqual(a.values().get(i), b.values().get(i), a.labels().get(i));
        }
        assertEquals(1f, b.reports().get(0).clipCoefficient());
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aSkippedStepReportsItsOwnClipCoefficient(Backend backend) {
        assertSkippedStepsReportTheirOwnClipCoefficient(backend);
    }

    /**
     * With clipping to 1 and SKIP_STEP: a clipped step (norm 5), then skipped steps with an
     * infinite and a NaN gradient, whose clip coefficients are what they computed, 1 / (inf + 1e-6)
     * = 0 and NaN, not the 1 / (5 + 1e-6) of the step before them.
     */
    static void assertSkippedStepsReportTheirOwnClipCoefficient(Backend backend) {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Sgd.builder().build()).optBackend(backend).optMaxGradNorm(1)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
            TensorBuffer grad = opt.allocate(2);
            opt.addGroup().add("w", opt.allocate(2), grad);
            grad.copyFrom(new float[] {3f, 4f});
            opt.step();
            assertEquals((float) (1 / (5 + 1e-6)), opt.lastStep().clipCoefficient(), "a clipped step");
            grad.copyFrom(new float[] {Float.POSITIVE_INFINITY, 4f});
            opt.step();
            assertTrue(opt.lastStep().skipped());
            assertEquals(0f, opt.lastStep().clipCoefficient(), "skipped, infinite norm: " + opt.lastStep());
            grad.copyFrom(new float[] {Float.NaN, 4f});
            opt.step();
            assertTrue(opt.lastStep().skipped());
            assertTrue(Float.isNaN(opt.lastStep().clipCoefficient()), "skipped, NaN norm: " + opt.lastStep());
        }
    }

    @Test
    void theFixedOrderSumIsAccurate() {
        Random random = new Random(4);
        double[] partials = new double[100_003];
        BigDecimal exact = BigDecimal.ZERO;
        for (int i = 0; i < partials.length; i++) {
            partials[i] = Math.abs(random.nextGaussian()) * Math.pow(2, random.nextInt(40) - 20);
            exact = exact.add(new BigDecimal(partials[i]));
        }
        double total = GradientStatistics.totalOf(partials, partials.length, new double[GradientStatistics.LANES]);
        BigDecimal relative = exact.subtract(new BigDecimal(total)).abs().divide(exact, MathContext.DECIMAL64);
        assertTrue(relative.compareTo(new BigDecimal("1e-14")) < 0, "relative error " + relative);
        assertEquals(total, GradientStatistics.totalOf(partials, partials.length, new double[GradientStatistics.LANES]),
                "deterministic");
    }

    @Test
    void capturedStepsReplayExactlyAsSteps() {
        for (OptimizerConfig config : List.of(Adam.adamW().build(), Momentum.builder().setMomentum(0.9).build())) {
            Scenario s = Scenario.of(config, SIZES).pipeline(NonFinitePolicy.SKIP_STEP, 0.5, 1024, 4);
            Scenario.assertSame(s.run(Backend.CPU), s.capturedSteps().run(Backend.CPU), config.toString());
        }
    }

    @Test
    void lossScaleIsValidated() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().build())) {
            assertThrows(IllegalArgumentException.class, () -> opt.setGradScale(0));
            assertThrows(IllegalArgumentException.class, () -> opt.setGradScale(Double.NaN));
            assertThrows(IllegalArgumentException.class, () -> opt.setGradScale(Double.POSITIVE_INFINITY));
            assertThrows(IllegalArgumentException.class, () -> opt.setGradScale(1e-300));
            opt.setGradScale(128);
            assertEquals(128, opt.gradScale());
        }
        assertThrows(IllegalArgumentException.class, () -> DeviceOptimizer.builder(Sgd.builder().build()).optMaxGradNorm(-1));
        assertThrows(IllegalArgumentException.class, () -> DeviceOptimizer.builder(Sgd.builder().build()).optMaxGradNorm(Double.NaN));
    }

    private static DeviceOptimizer build(OptimizerConfig config, NonFinitePolicy policy) {
        return DeviceOptimizer.builder(config).optBackend(Backend.CPU).optNonFinitePolicy(policy).build();
    }

    /** Registers SIZES with random params in one group; returns {param0, grad0, param1, grad1, ...}. */
    private static TensorBuffer[] register(DeviceOptimizer opt) {
        return register(opt, Float.NaN);
    }

    private static TensorBuffer[] register(DeviceOptimizer opt, float fill) {
        Random random = new Random(1);
        ParamGroup group = opt.addGroup();
        TensorBuffer[] out = new TensorBuffer[2 * SIZES.length];
        for (int i = 0; i < SIZES.length; i++) {
            TensorBuffer p = opt.allocate(SIZES[i]);
            TensorBuffer g = opt.allocate(SIZES[i]);
            float[] init = Scenario.gaussian(random, SIZES[i], 1f);
            if (!Float.isNaN(fill)) java.util.Arrays.fill(init, fill);
            p.copyFrom(init);
            group.add("t" + i, p, g);
            out[2 * i] = p;
            out[2 * i + 1] = g;
        }
        return out;
    }

    private static float[][] grads(Random random) {
        float[][] g = new float[SIZES.length][];
        for (int i = 0; i < SIZES.length; i++) g[i] = Scenario.gaussian(random, SIZES[i], 1f);
        return g;
    }

    private static void feed(DeviceOptimizer opt, float[][] g) {
        List<Parameter> params = new java.util.ArrayList<>();
        for (ParamGroup group : opt.groups()) params.addAll(group.parameters());
        for (int i = 0; i < g.length; i++) params.get(i).grad().copyFrom(g[i]);
    }
}
