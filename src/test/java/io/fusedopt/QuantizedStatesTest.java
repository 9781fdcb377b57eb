package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.StepScalars;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * 8-bit blockwise states ({@link StateQuantization#BLOCKWISE_8BIT}) on the reference backend: which
 * tensors and algorithms get them, their memory, their values through {@link Parameter#state}, and
 * AdamW's trajectory against a model written from the rule (dequantize, the formula in float32,
 * quantize each block with its new absmax). The other backends are held against this one by the
 * equivalence tests.
 */
class QuantizedStatesTest {
    /** Four full blocks past the 8-bit threshold and a partial one. */
    private static final int N = StateQuantization.MIN_ELEMENTS + 3 * 256 + 77;

    private static DeviceOptimizer eightBit(OptimizerConfig config) {
        return DeviceOptimizer.builder(config).optBackend(Backend.CPU)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT).build();
    }

    @Test
    void algorithmsWithoutAnEightBitFormAreRefusedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DeviceOptimizer.builder(NAdam.builder().build())
                .optBackend(Backend.CPU).optStateQuantization(StateQuantization.BLOCKWISE_8BIT).build());
        assertTrue(e.getMessage().contains("NAdam has no 8-bit form"), e.getMessage());
        assertTrue(e.getMessage().contains("[Sgd") || e.getMessage().contains("Adam"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> DeviceOptimizer.builder(Adam.builder().build()).optStateQuantization(null));
    }

    /** Codes plus a float per block, against 4 bytes per element; a small tensor keeps float32 states. */
    @Test
    void largeTensorsTakeOneByteAndAScalePerBlockSmallOnesStayFloat32() {
        try (DeviceOptimizer opt = eightBit(Adam.adamW().build())) {
            assertEquals(StateQuantization.BLOCKWISE_8BIT, opt.stateQuantization());
            long before = opt.ownedBytes();
            opt.addGroup().add("w", opt.allocate(N), opt.allocate(N));
            long blocks = (N + 255) / 256;
            assertEquals(2L * N * Float.BYTES + 2 * (N + blocks * Float.BYTES), opt.ownedBytes() - before);
            assertTrue(opt.parameter("w").orElseThrow().toString().contains(", 8-bit states"), opt.parameter("w").toString());
            long small = StateQuantization.MIN_ELEMENTS - 1;
            long beforeSmall = opt.ownedBytes();
            opt.addGroup().add("b", opt.allocate(small), opt.allocate(small));
            assertEquals(4L * small * Float.BYTES, opt.ownedBytes() - beforeSmall);
            assertTrue(!opt.parameter("b").orElseThrow().toString().contains("8-bit"), opt.parameter("b").toString());
        }
    }

    /** Issue 29's bound: 8-bit Adam at 2^24 elements keeps at most 2.1 bytes of state per parameter (2 + 2 * 4/256). */
    @Test
    void eightBitAdamAtTwoToTheTwentyFourKeepsAtMost2Point1BytesOfStatePerParameter() {
        int n = 1 << 24;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build()).optBackend(Backend.CPU)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT).optStochasticRounding(1).build()) {
            TensorBuffer param = opt.allocate(n, Precision.BF16), grad = opt.allocate(n, Precision.BF16);
            long paramsAndGrads = opt.ownedBytes();
            opt.addGroup().add("w", param, grad);
            long stateBytes = opt.ownedBytes() - paramsAndGrads;
            assertEquals(2L * (n + Float.BYTES * (n / 256)), stateBytes);
            assertTrue(stateBytes <= 2.1 * n, stateBytes / (double) n + " bytes per parameter");
        }
    }

    /** A state starts at its initial value, exactly where the value is a map value times its absmax (Adagrad's accumulator). */
    @Test
    void statesStartAtTheirInitialValue() {
        try (DeviceOptimizer opt = eightBit(Adagrad.builder().optInitialAccumulatorValue(0.25).build())) {
            Parameter p = opt.addGroup().add("w", opt.allocate(N), opt.allocate(N));
            float[] sum = new float[N];
            p.state(StateKind.SUM).copyTo(sum);
            for (float v : sum) assertEquals(0.25f, v);
        }
    }

    /**
     * Three AdamW steps with m in the signed map and v in the unsigned one, against the rule:
     * every bit of the params and of the states as read back.
     */
    @Test
    void adamWFollowsTheRuleBitForBit() {
        // The hyper-parameters as float32, each per-step scalar computed from them in double and rounded once.
        float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, wd = 0.01f;
        Random random = new Random(29);
        float[] w = new float[N];
        for (int i = 0; i < N; i++) w[i] = (float) random.nextGaussian();
        float[][] grads = new float[3][N];
        for (float[] g : grads) for (int i = 0; i < N; i++) g[i] = (float) (random.nextGaussian() * Math.exp(random.nextGaussian()));
        grads[1][300] = 0f;
        for (int i = 512; i < 768; i++) grads[2][i] = 0f; // a block whose update is the decay alone

        float[] expectedW = w.clone();
        byte[] mCodes = new byte[N], vCodes = new byte[N];
        float[] mAbsmax = new float[(N + 255) / 256], vAbsmax = new float[mAbsmax.length];
        BlockwiseQuantization.quantizeBlocks(new float[N], CodeMap.SIGNED, mCodes, mAbsmax);
        BlockwiseQuantization.quantizeBlocks(new float[N], CodeMap.UNSIGNED, vCodes, vAbsmax);
        float[] m = new float[N], v = new float[N];
        for (int t = 1; t <= 3; t++) {
            BlockwiseQuantization.dequantizeBlocks(mCodes, mAbsmax, CodeMap.SIGNED, m);
            BlockwiseQuantization.dequantizeBlocks(vCodes, vAbsmax, CodeMap.UNSIGNED, v);
            float negStepSize = (float) -((double) lr / (1 - StepScalars.powerBySquaring(beta1, t)));
            float invSqrtBc2 = (float) (1 / Math.sqrt(1 - StepScalars.powerBySquaring(beta2, t)));
            float oneMinusBeta1 = (float) (1.0 - beta1), oneMinusBeta2 = (float) (1.0 - beta2);
            float decay = (float) (1 - (double) lr * wd);
            for (int i = 0; i < N; i++) {
                float p = expectedW[i] * decay;
                float g = grads[t - 1][i];
                m[i] = Math.fma(beta1, m[i], oneMinusBeta1 * g);
                v[i] = Math.fma(beta2, v[i], oneMinusBeta2 * (g * g));
                float denom = Math.fma((float) Math.sqrt(v[i]), invSqrtBc2, eps);
                expectedW[i] = Math.fma(negStepSize, m[i] / denom, p);
            }
            BlockwiseQuantization.quantizeBlocks(m, CodeMap.SIGNED, mCodes, mAbsmax);
            BlockwiseQuantization.quantizeBlocks(v, CodeMap.UNSIGNED, vCodes, vAbsmax);
        }
        BlockwiseQuantization.dequantizeBlocks(mCodes, mAbsmax, CodeMap.SIGNED, m);
        BlockwiseQuantization.dequantizeBlocks(vCodes, vAbsmax, CodeMap.UNSIGNED, v);

        try (DeviceOptimizer opt = eightBit(Adam.adamW().optLearningRate(lr).optWeightDecay(wd).build())) {
            float[] param = w.clone(), grad = new float[N];
            Parameter p = opt.addGroup().add("w", param, grad);
            for (float[] g : grads) {
                System.arraycopy(g, 0, grad, 0, N);
                opt.step();
            }
            assertArrayEquals(expectedW, param);
            float[] stateM = new float[N], stateV = new float[N];
            p.state(StateKind.EXP_AVG).copyTo(stateM);
            p.state(StateKind.EXP_AVG_SQ).copyTo(stateV);
            assertArrayEquals(m, stateM);
            assertArrayEquals(v, stateV);
        }
    }

    /** Every state an 8-bit algorithm keeps has a code map; the kernels of the others have no 8-bit entry point. */
    @Test
    void everyEightBitStateHasACodeMap() {
        Variants.withQuantizedStates().forEach((name, config) -> {
            for (StateKind kind : config.stateKinds()) {
                assertTrue(BlockwiseQuantization.mapFor(kind) != null, name + ": " + kind + " has no code map");
            }
        });
        for (io.fusedopt.internal.Algorithm<?> a : io.fusedopt.internal.Algorithms.all()) {
            for (io.fusedopt.internal.UpdateKernel k : a.kernels()) {
                assertEquals(a.hasQuantizedStates(), k.hasQuantizedEntryPoint(), k.toString());
            }
        }
    }

    static java.util.stream.Stream<String> quantizedVariants() {
        return Variants.withQuantizedStates().keySet().stream();
    }

    /**
     * Every variant of every algorithm with 8-bit states follows its float32 self over five steps:
     * params off by a tenth of the distance they travelled, on average (Lion's sign flips a whole
     * step where its quantized first moment crosses zero), states within 3% of their largest value. A state quantized with the wrong map (a signed state in the unsigned one clamps its
     * negative values to 0) or in the wrong slot breaks this at once.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.MethodSource("quantizedVariants")
    void everyEightBitVariantTracksItsFloat32Self(String variant) {
        OptimizerConfig config = Variants.elementwise().get(variant);
        float[][] params = new float[2][];
        float[][][] states = new float[2][][];
        float[] start = new float[N];
        Random random = new Random(variant.hashCode());
        for (int i = 0; i < N; i++) start[i] = (float) random.nextGaussian();
        for (int run = 0; run < 2; run++) {
            DeviceOptimizer.Builder b = DeviceOptimizer.builder(config).optBackend(Backend.CPU);
            if (run == 1) b.optStateQuantization(StateQuantization.BLOCKWISE_8BIT);
            Random grads = new Random(7);
            try (DeviceOptimizer opt = b.build()) {
                float[] param = start.clone(), grad = new float[N];
                Parameter p = opt.addGroup().add("w", param, grad);
                for (int t = 0; t < 5; t++) {
                    for (int i = 0; i < N; i++) grad[i] = (float) (grads.nextGaussian() * (1 + i % 7));
                    opt.step();
                }
                params[run] = param;
                states[run] = new float[p.stateKinds().size()][N];
                for (int k = 0; k < states[run].length; k++) p.state(p.stateKinds().get(k)).copyTo(states[run][k]);
            }
        }
        double travelled = 0, off = 0;
        for (int i = 0; i < N; i++) {
            travelled += Math.abs(params[0][i] - start[i]);
            off += Math.abs(params[1][i] - params[0][i]);
        }
        assertTrue(off <= 0.1 * travelled, variant + ": params " + off + " off after travelling " + travelled);
        for (int k = 0; k < states[0].length; k++) {
            double largest = 0, stateOff = 0;
            for (int i = 0; i < N; i++) {
                largest = Math.max(largest, Math.abs(states[0][k][i]));
                stateOff = Math.max(stateOff, Math.abs(states[1][k][i] - states[0][k][i]));
            }
            assertTrue(stateOff <= 0.03 * largest, variant + " state " + k + ": " + stateOff + " off, largest " + largest);
        }
    }
}
