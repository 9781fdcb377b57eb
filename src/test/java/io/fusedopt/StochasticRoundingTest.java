package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.Philox;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Stochastic rounding of 16-bit params ({@link DeviceOptimizer.Builder#optStochasticRounding}):
 * Philox4x32-10 against Random123's known answers, the rounding rule on chosen values, its
 * unbiasedness, the small updates it keeps where rounding to nearest loses them, the same bits on
 * every backend, exact resume from a checkpoint, and the refused combinations.
 */
class StochasticRoundingTest {

    /** Random123's kat_vectors for philox4x32_10: counter, key, then the block. */
    @Test
    void philoxGivesRandom123sKnownAnswers() {
        int[][] vectors = {
            {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
            {-1, -1, -1, -1, -1, -1, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
            {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
        };
        for (int[] v : vectors) {
            int[] out = new int[4];
            Philox.block(new int[] {v[0], v[1], v[2], v[3]}, v[4], v[5], out);
            assertArrayEquals(new int[] {v[6], v[7], v[8], v[9]}, out);
        }
    }

    /**
     * bf16 1 + 2^-9 lies a quarter of the way from 1 to 1 + 2^-7: it rounds up exactly when the
     * random word is below 2^30; -(1 + 2^-9) rounds away from zero the same way; exact values, NaN
     * and infinities ignore the random bits; an fp16 value past the largest finite one always
     * becomes infinity, and 2^-25, half way to fp16's smallest subnormal, rounds up below 2^31.
     */
    @Test
    void theRuleRoundsAwayFromZeroWithProbabilityFrac() {
        float quarter = 1f + 0x1p-9f;
        short down = Conversions.floatToBf16(1f), up = (short) (down + 1);
        assertEquals(up, Conversions.narrowStochastic(Precision.BF16, quarter, 0));
        assertEquals(up, Conversions.narrowStochastic(Precision.BF16, quarter, (1 << 30) - 1));
        assertEquals(down, Conversions.narrowStochastic(Precision.BF16, quarter, 1 << 30));
        assertEquals(down, Conversions.narrowStochastic(Precision.BF16, quarter, -1));
        assertEquals((short) (up | 0x8000), Conversions.narrowStochastic(Precision.BF16, -quarter, 5));
        assertEquals((short) (down | 0x8000), Conversions.narrowStochastic(Precision.BF16, -quarter, -1));
        for (int random : new int[] {0, 1 << 30, -1}) {
            for (Precision p : new Precision[] {Precision.BF16, Precision.FP16}) {
                for (float exact : new float[] {1f, -2.5f, 0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                    assertEquals(Conversions.narrow(p, exact), Conversions.narrowStochastic(p, exact, random), p + " " + exact);
                }
                assertEquals(Conversions.CANONICAL_NAN, Conversions.narrowStochastic(p, Float.NaN, random));
            }
            assertEquals((short) 0x7C00, Conversions.narrowStochastic(Precision.FP16, 70000f, random), "past fp16's largest");
        }
        assertEquals((short) 0x0001, Conversions.narrowStochastic(Precision.FP16, 0x1p-25f, Integer.MAX_VALUE));
        assertEquals((short) 0x0000, Conversions.narrowStochastic(Precision.FP16, 0x1p-25f, Integer.MIN_VALUE));
    }

    /** Over Philox's words, the mean of the rounded values is the value (E[round(x)] = x). */
    @Test
    void theRoundingIsUnbiased() {
        int n = 1 << 16;
        int[] counter = new int[4], block = new int[4];
        for (Precision p : new Precision[] {Precision.BF16, Precision.FP16}) {
            for (float x : new float[] {1f + 0x1p-10f, -3.3f, 1e-6f}) {
                double sum = 0;
                for (int k = 0; k < n; k++) sum += Conversions.widen(p, Conversions.narrowStochastic(p, x, Philox.word(42, 7, 3, k, counter, block)));
                double spacing = Math.abs(Conversions.widen(p, (short) (Conversions.narrow(p, x) + 1)) - Conversions.widen(p, Conversions.narrow(p, x)));
                // A Bernoulli mean over n draws: within 5 standard deviations, at most spacing / (2 sqrt n) each.
                assertEquals(x, sum / n, 5 * spacing / (2 * Math.sqrt(n)), p + " " + x);
            }
        }
    }

    /**
     * SGD steps of 1e-4 on bf16 params at 1 (half an ulp is 2^-8): rounded to nearest they never
     * move; rounded stochastically they follow the float32 trajectory on average.
     */
    @Test
    void smallUpdatesSurviveOnAverage() {
        int n = 4096, steps = 100;
        float lr = 1e-4f;
        float[] ones = new float[n];
        java.util.Arrays.fill(ones, 1f);
        for (boolean stochastic : new boolean[] {false, true}) {
            DeviceOptimizer.Builder b = DeviceOptimizer.builder(Sgd.builder().optLearningRate(lr).build()).optBackend(Backend.CPU);
            b = stochastic ? b.optStochasticRounding(1234) : b.optMasterWeights(false);
            try (DeviceOptimizer opt = b.build()) {
                TensorBuffer p = opt.allocate(n, Precision.BF16), g = opt.allocate(n);
                p.copyFrom(ones);
                g.copyFrom(ones);
                opt.addGroup().add("w", p, g);
                for (int t = 0; t < steps; t++) opt.step();
                double mean = 0;
                for (float v : p.toArray()) mean += v;
                mean /= n;
                if (stochastic) {
                    assertEquals(1 - steps * lr, mean, 1e-3, "stochastic rounding follows the float32 path on average");
                } else {
                    assertEquals(1.0, mean, 0.0, "rounding to nearest loses every update");
                }
            }
        }
    }

    private static final int SIZE = 1000 + 37; // vector body and scalar tail

    /** Adam on bf16 and fp16 params with stochastic rounding, 4 steps; the params after each. */
    private static List<float[]> run(Backend backend, Precision precision, long seed) {
        return run(backend, precision, Precision.FP32, seed);
    }

    /** {@link #run(Backend, Precision, long)} with the states in {@code states} (BF16: every operand 16-bit). */
    private static List<float[]> run(Backend backend, Precision precision, Precision states, long seed) {
        Random random = new Random(precision.ordinal());
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().optLearningRate(1e-2).build()).optBackend(backend)
                .optStochasticRounding(seed).optStatePrecision(states).build()) {
            TensorBuffer p = opt.allocate(SIZE, precision), g = opt.allocate(SIZE, precision);
            TensorBuffer q = opt.allocate(7, precision), h = opt.allocate(7, precision);
            p.copyFrom(Scenario.gaussian(random, SIZE, 1f));
            q.copyFrom(Scenario.gaussian(random, 7, 1f));
            ParamGroup group = opt.addGroup();
            group.add("layer.weight", p, g);
            group.add("layer.bias", q, h);
            List<float[]> out = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                g.copyFrom(Scenario.gaussian(random, SIZE, 0.1f));
                h.copyFrom(Scenario.gaussian(random, 7, 0.1f));
                opt.step();
                out.add(p.toArray());
                out.add(q.toArray());
            }
            return out;
        }
    }

    @ParameterizedTest
    @EnumSource(value = Precision.class, names = {"BF16", "FP16"})
    void theFastBackendDrawsTheReferencesBits(Precision precision) {
        assertSameBits(run(Backend.CPU, precision, 99), run(Backend.CPU_FAST, precision, 99), "CPU_FAST " + precision);
    }

    @Test
    @Tag("gpu")
    void cudaDrawsTheReferencesBits() {
        GpuTests.assumeGpu();
        for (Precision precision : new Precision[] {Precision.BF16, Precision.FP16}) {
            assertSameBits(run(Backend.CPU, precision, -5), run(Backend.CUDA, precision, -5), "CUDA " + precision);
            assertSameBits(run(Backend.CPU, precision, Precision.BF16, -5), run(Backend.CUDA, precision, Precision.BF16, -5),
                    "CUDA " + precision + ", bf16 states");
        }
    }

    @Test
    void anotherSeedDrawsOtherBits() {
        List<float[]> a = run(Backend.CPU, Precision.BF16, 1), b = run(Backend.CPU, Precision.BF16, 2);
        assertTrue(!java.util.Arrays.equals(a.get(a.size() - 2), b.get(b.size() - 2)), "two seeds, the same params");
    }

    private static void assertSameBits(List<float[]> expected, List<float[]> actual, String what) {
        for (int i = 0; i < expected.size(); i++) {
            float[] e = expected.get(i), a = actual.get(i);
            for (int k = 0; k < e.length; k++) {
                assertEquals(Float.floatToIntBits(e[k]), Float.floatToIntBits(a[k]), what + " result " + i + " element " + k);
            }
        }
    }

    /**
     * Three steps, a checkpoint, three more: an optimizer built with another seed that loads the
     * checkpoint takes the saved seed and ends where the uninterrupted run ends, bit for bit.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aResumedRunDrawsWhatTheUninterruptedRunWould(Backend backend) throws Exception {
        float[][] grads = new float[6][];
        Random random = new Random(3);
        for (int t = 0; t < 6; t++) grads[t] = Scenario.gaussian(random, SIZE, 0.1f);
        float[] initial = Scenario.gaussian(random, SIZE, 1f);
        float[] uninterrupted;
        byte[] saved = null;
        try (DeviceOptimizer opt = srOptimizer(backend, 77)) {
            TensorBuffer[] pg = addOne(opt, initial);
            for (int t = 0; t < 6; t++) {
                pg[1].copyFrom(grads[t]);
                opt.step();
                if (t == 2) {
                    ByteArrayOutputStream out = new ByteArrayOutputStream();
                    opt.save(out);
                    saved = out.toByteArray();
                }
            }
            uninterrupted = pg[0].toArray();
        }
        try (DeviceOptimizer opt = srOptimizer(backend, 12345)) {
            TensorBuffer[] pg = addOne(opt, new float[SIZE]);
            opt.load(saved);
            assertEquals(77L, opt.stochasticRoundingSeed().getAsLong(), "the saved seed");
            for (int t = 3; t < 6; t++) {
                pg[1].copyFrom(grads[t]);
                opt.step();
            }
            assertSameBits(List.of(uninterrupted), List.of(pg[0].toArray()), backend + " resumed");
        }
    }

    private static DeviceOptimizer srOptimizer(Backend backend, long seed) {
        return DeviceOptimizer.builder(Adam.adamW().optLearningRate(1e-2).build()).optBackend(backend).optStochasticRounding(seed).build();
    }

    private static TensorBuffer[] addOne(DeviceOptimizer opt, float[] initial) {
        TensorBuffer p = opt.allocate(SIZE, Precision.BF16), g = opt.allocate(SIZE, Precision.BF16);
        p.copyFrom(initial);
        opt.addGroup().add("w", p, g);
        return new TensorBuffer[] {p, g};
    }

    @Test
    void refusedCombinationsChangeNothing() throws Exception {
        IllegalArgumentException both = assertThrows(IllegalArgumentException.class,
                () -> DeviceOptimizer.builder(Sgd.builder().build()).optBackend(Backend.CPU).optMasterWeights(true).optStochasticRounding(1).build());
        assertTrue(both.getMessage().contains("master weights"), both.getMessage());
        try (DeviceOptimizer opt = srOptimizer(Backend.CPU, 1)) {
            ParamGroup group = opt.addGroup();
            IllegalArgumentException fp32 = assertThrows(IllegalArgumentException.class,
                    () -> group.add("w", opt.allocate(4), opt.allocate(4)));
            assertTrue(fp32.getMessage().contains("'w' is FP32"), fp32.getMessage());
            assertEquals(0, group.parameters().size(), "nothing registered");
            group.add("w", opt.allocate(4, Precision.BF16), opt.allocate(4, Precision.BF16)); // the name is still free
            assertTrue(opt.usesMasterWeights() == false, "no master weights with stochastic rounding");
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            opt.save(out);
            byte[] saved = out.toByteArray();
            // Into an optimizer that rounds to nearest: refused.
            try (DeviceOptimizer nearest = DeviceOptimizer.builder(Adam.adamW().optLearningRate(1e-2).build()).optBackend(Backend.CPU).optMasterWeights(false).build()) {
                nearest.addGroup().add("w", nearest.allocate(4, Precision.BF16), nearest.allocate(4, Precision.BF16));
                CheckpointException e = assertThrows(CheckpointException.class, () -> nearest.load(saved));
                assertTrue(e.getMessage().contains("stochastic rounding"), e.getMessage());
            }
            // A damaged seed: refused before anything changes.
            byte[] damaged = FrozenAndLateParametersTest.withMetadata(saved, "stochastic_rounding_seed", "x");
            CheckpointException e = assertThrows(CheckpointException.class, () -> opt.load(damaged));
            assertTrue(e.getMessage().contains("stochastic_rounding_seed"), e.getMessage());
            assertEquals(1L, opt.stochasticRoundingSeed().getAsLong());
        }
    }
}
