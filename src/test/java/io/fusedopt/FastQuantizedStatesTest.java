package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * 8-bit blockwise states on {@link Backend#CPU_FAST} equal the reference backend's bit for bit:
 * params, masters, states as read back and step reports, for every variant of the algorithms with
 * 8-bit states, and per kernel with 16-bit params (with and without master weights, rounded to
 * nearest and stochastically), a scaled and clipped gradient with a skipped step, tensors of two
 * chunks updated in parallel; and a step with 8-bit states allocates nothing.
 */
class FastQuantizedStatesTest {
    /**
     * A tensor below {@link StateQuantization#MIN_ELEMENTS} (float32 states beside the 8-bit ones),
     * one of exactly that many, one with a partial last block, and one whose last tile (the fast
     * backend's 4096 elements) is short and ends in a partial block.
     */
    private static final int[] SIZES = {1000, StateQuantization.MIN_ELEMENTS, StateQuantization.MIN_ELEMENTS + 3 * 256 + 77, 20000};
    /** Two chunks of 2^16 elements, the second one's tiles at element 65536 of the states; with a partial last block. */
    private static final int TWO_CHUNKS = 65536 + 4096 + 300;

    static Stream<Arguments> variants() {
        return Variants.withQuantizedStates().entrySet().stream().map(e -> Arguments.of(e.getKey(), e.getValue()));
    }

    /**
     * Per kernel, the variant with the most states (RMSProp centered with momentum, AMSGrad AdamW),
     * and which two of {@link #FORMATS} it runs (each runs with three or four kernels: the
     * formats' code around the 8-bit states is the same for every kernel).
     */
    static Stream<Arguments> kernels() {
        String[] names = {"momentum-buffer-nesterov-l2", "momentum-velocity", "rmsprop-centered-momentum-l2",
            "adamw-amsgrad-step-size", "adagrad-decay-initial", "lion", "ademamix"};
        return java.util.stream.IntStream.range(0, names.length).mapToObj(k -> {
            OptimizerConfig config = Variants.withQuantizedStates().get(names[k]);
            if (config == null) throw new IllegalStateException("no 8-bit variant " + names[k]);
            return Arguments.of(names[k], config, k % FORMATS.length, (k + 2) % FORMATS.length);
        });
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("variants")
    void everyVariantEqualsTheReference(String name, OptimizerConfig config) {
        Scenario s = Scenario.of(config, SIZES);
        Scenario.assertSame(run(s, Backend.CPU, 0), run(s, Backend.CPU_FAST, 0), name);
    }

    /**
     * Storage formats and the gradient pipeline: bf16 params with fp32 masters, fp16 params and
     * grads without, bf16 params rounded stochastically, then float32 with a scaled and clipped
     * gradient and a non-finite one at step 4 (skipped) over tensors whose chunks make the fast
     * backend run its units in parallel on its three threads.
     */
    private static final String[] FORMATS = {"bf16 params, fp32 masters", "fp16 params and grads, no masters",
        "bf16 params rounded stochastically", "scaled, clipped, a skipped step, in parallel"};

    private static Scenario format(int f, OptimizerConfig config) {
        // Each kernel runs formats 0 and 2 or 1 and 3: one of them over two chunks.
        return switch (f) {
            case 0 -> Scenario.of(config, 1000, StateQuantization.MIN_ELEMENTS + 3 * 256 + 77, TWO_CHUNKS)
                    .formats(Precision.BF16, Precision.BF16, Precision.FP32, true);
            case 1 -> Scenario.of(config, SIZES).formats(Precision.FP16, Precision.FP16, Precision.FP32, false);
            case 2 -> Scenario.of(config, SIZES).formats(Precision.BF16, Precision.FP32, Precision.FP32, false);
            // Four chunks: enough work for the team to share (two chunks at least).
            default -> Scenario.of(config, 1000, TWO_CHUNKS, TWO_CHUNKS).formats(Precision.FP32, Precision.FP32, Precision.FP32, false)
                    .pipeline(NonFinitePolicy.SKIP_STEP, 1.0, 256, 4);
        };
    }

    @ParameterizedTest(name = "{0}: formats {2} and {3}")
    @MethodSource("kernels")
    void sixteenBitParamsAndTheGradientPipelineEqualTheReference(String name, OptimizerConfig config, int first, int second) {
        for (int f : new int[] {first, second}) {
            Scenario s = format(f, config);
            long seed = f == 2 ? 29 : 0; // stochastic rounding
            Scenario.assertSame(run(s, Backend.CPU, seed), run(s, Backend.CPU_FAST, seed), name + ", " + FORMATS[f]);
        }
    }

    /** The scenario with 8-bit states (stochastic rounding with {@code seed} unless 0); three threads on CPU_FAST. */
    private static Scenario.Result run(Scenario s, Backend backend, long seed) {
        DeviceOptimizer.Builder b = s.builder(backend).optStateQuantization(StateQuantization.BLOCKWISE_8BIT);
        if (seed != 0) b.optStochasticRounding(seed);
        if (backend == Backend.CPU_FAST) b.optCpuThreads(3);
        try (DeviceOptimizer opt = b.build()) {
            return s.runOn(opt);
        }
    }

    /**
     * After warm-up a step with 8-bit states allocates nothing on any thread: the quantization's
     * scratch is per worker, and C2 compiles its vectors without boxing them (inlined into a large
     * caller, JDK 17's C2 boxed them: 12 bytes per element).
     */
    @Test
    void aStepWithEightBitStatesAllocatesNothing() {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU_FAST)
                .optStateQuantization(StateQuantization.BLOCKWISE_8BIT).optCpuThreads(3).optMaxGradNorm(1.0).build()) {
            ParamGroup group = opt.addGroup();
            for (Precision p : new Precision[] {Precision.FP32, Precision.BF16}) {
                TensorBuffer w = opt.allocate(TWO_CHUNKS, p);
                TensorBuffer g = opt.allocate(TWO_CHUNKS, p);
                g.copyFrom(Scenario.gaussian(new Random(3), TWO_CHUNKS, 1f));
                group.add("w" + p, w, g);
            }
            FastCpuBackendTest.assertStepsAllocateNothing(opt, 2);
            assertTrue(opt.deviceDescription().contains("8-bit states of 2 tensors"), opt.deviceDescription());
        }
    }
}
