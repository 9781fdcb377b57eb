package io.fusedopt;

import static io.fusedopt.CudaEquivalenceTest.assertBitEqual;
import static io.fusedopt.CudaEquivalenceTest.gaussian;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.QuantizedBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * 8-bit blockwise states on CUDA (the {@code _q8} entry points) equal the CPU reference bit for
 * bit: params, and every state's codes and absmax, for every variant of the algorithms with 8-bit
 * states, and for 16-bit params with master weights or stochastic rounding. Two tensors past the
 * threshold (8-bit states, partial last blocks, an all-zero gradient block, a NaN gradient late on)
 * and one below it (float32 states, the float32 entry point), in two groups, across a learning-rate
 * change.
 */
@Tag("gpu")
class CudaQuantizedEquivalenceTest {
    private static final int BLOCK = BlockwiseQuantization.BLOCK;
    private static final int[] SIZES = {1023, StateQuantization.MIN_ELEMENTS + 333, StateQuantization.MIN_ELEMENTS + 2 * BLOCK + 77};
    private static final int STEPS = 6;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    static Stream<Arguments> quantizedVariants() {
        return Variants.withQuantizedStates().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("quantizedVariants")
    void eightBitStatesEqualTheReferenceBitForBit(String name, OptimizerConfig config) {
        compare(name, config, b -> b, Precision.FP32, Precision.FP32);
    }

    @Test
    void sixteenBitParamsWithEightBitStatesEqualTheReference() {
        OptimizerConfig adamW = Variants.elementwise().get("adamw");
        compare("adamw, bf16 params with masters, fp16 grads", adamW, b -> b, Precision.BF16, Precision.FP16);
        compare("adamw, fp16 params rounded stochastically, bf16 grads", adamW, b -> b.optStochasticRounding(29),
                Precision.FP16, Precision.BF16);
    }

    private static void compare(String name, OptimizerConfig config, UnaryOperator<DeviceOptimizer.Builder> options,
                                Precision paramPrecision, Precision gradPrecision) {
        long seed = name.hashCode() * 31L + 17;
        Random random = new Random(seed);
        List<float[]> initial = new ArrayList<>();
        for (int size : SIZES) initial.add(gaussian(random, size, 1f));
        List<List<Parameter>> params = new ArrayList<>();
        List<List<ParamGroup>> groups = new ArrayList<>();
        try (DeviceOptimizer cpu = eightBit(config, Backend.CPU, options);
             DeviceOptimizer cuda = eightBit(config, Backend.CUDA, options)) {
            for (DeviceOptimizer opt : List.of(cpu, cuda)) {
                List<ParamGroup> gs = List.of(opt.addGroup(), opt.addGroup(config.withLearningRate(config.learningRate() * 0.25)));
                List<Parameter> ps = new ArrayList<>();
                for (int i = 0; i < SIZES.length; i++) {
                    TensorBuffer p = opt.allocate(SIZES[i], paramPrecision);
                    p.copyFrom(initial.get(i));
                    ps.add(gs.get(i % 2).add("t" + i, p, opt.allocate(SIZES[i], gradPrecision)));
                }
                groups.add(gs);
                params.add(ps);
            }
            for (int t = 1; t <= STEPS; t++) {
                if (t == STEPS / 2) { // a schedule: the scalars must follow on both sides
                    for (List<ParamGroup> gs : groups) for (ParamGroup g : gs) g.setLearningRate(g.config().learningRate() * 0.5);
                }
                for (int i = 0; i < SIZES.length; i++) {
                    float[] grad = gaussian(random, SIZES[i], t % 3 == 0 ? 1e-3f : 1f);
                    Arrays.fill(grad, BLOCK, 2 * BLOCK, 0f);  // zero gradients: an absmax of 0 where nothing else moves the states
                    if (t == STEPS - 1) grad[SIZES[i] - 3] = Float.NaN; // the last block's absmax becomes NaN
                    for (List<Parameter> ps : params) ps.get(i).grad().copyFrom(grad);
                }
                cpu.step();
                cuda.step();
            }
            for (int i = 0; i < SIZES.length; i++) {
                Parameter a = params.get(0).get(i), b = params.get(1).get(i);
                String where = name + " (seed " + seed + ") " + a.name() + " of " + SIZES[i];
                assertBitEqual(a.param().toArray(), b.param().toArray(), where + " param");
                for (StateKind kind : a.stateKinds()) {
                    assertBitEqual(a.state(kind).toArray(), b.state(kind).toArray(), where + " " + kind.stateName());
                    assertSameCodes(a.state(kind), b.state(kind), where + " " + kind.stateName());
                }
            }
        }
    }

    private static DeviceOptimizer eightBit(OptimizerConfig config, Backend backend, UnaryOperator<DeviceOptimizer.Builder> options) {
        return options.apply(DeviceOptimizer.builder(config).optBackend(backend)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT)).build();
    }

    /** The codes and absmax themselves (equal values could hide different codes only in a block of absmax 0 or NaN). */
    private static void assertSameCodes(TensorBuffer expected, TensorBuffer actual, String label) {
        assertEquals(expected instanceof QuantizedBuffer, actual instanceof QuantizedBuffer, label + ": 8-bit on one backend only");
        if (!(expected instanceof QuantizedBuffer a) || !(actual instanceof QuantizedBuffer b)) return;
        int n = (int) a.length();
        byte[] codesA = new byte[n], codesB = new byte[n];
        a.readCodes(0, codesA, 0, n);
        b.readCodes(0, codesB, 0, n);
        assertArrayEquals(codesA, codesB, label + " codes");
        float[] absmaxA = new float[a.blocks()], absmaxB = new float[b.blocks()];
        a.readAbsmax(0, absmaxA, 0, absmaxA.length);
        b.readAbsmax(0, absmaxB, 0, absmaxB.length);
        for (int k = 0; k < absmaxA.length; k++) {
            assertEquals(Float.floatToRawIntBits(absmaxA[k]), Float.floatToRawIntBits(absmaxB[k]), label + " absmax of block " + k);
        }
    }
}
