package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The bit-exact contract for the paths of the single-launch work: mixed storage formats (the
 * _mixed kernels, 8-element vectors), the device control block (scalars computed on the device),
 * the gradient statistics and clipping, skip-on-non-finite, and CUDA graph replays: CUDA equals
 * the CPU backend bit for bit, step reports included. Skipped, with the probe's reason, without a GPU.
 */
@Tag("gpu")
class CudaPipelineTest {
    private static final int[] SIZES = {1, 3, 17, 1023, (1 << 17) + 9};

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    static Stream<Arguments> scenarios() {
        List<Arguments> out = new ArrayList<>();
        Precision[][] formats = {
            {Precision.BF16, Precision.BF16, Precision.FP32}, {Precision.FP16, Precision.FP32, Precision.BF16},
            {Precision.FP32, Precision.BF16, Precision.BF16}};
        // Every variant through the whole pipeline in fp32; the storage formats (the kernel's mixed
        // entry point) once per kernel.
        Map<String, OptimizerConfig> perKernel = Variants.onePerKernel();
        for (Map.Entry<String, OptimizerConfig> v : Variants.elementwise().entrySet()) {
            Scenario base = Scenario.of(v.getValue(), SIZES);
            out.add(Arguments.of(v.getKey() + " fp32 clip+skip+scale",
                    base.pipeline(NonFinitePolicy.SKIP_STEP, 2.0, 1024, 3)));
            if (!perKernel.containsKey(v.getKey())) continue;
            for (Precision[] f : formats) {
                out.add(Arguments.of(v.getKey() + " " + f[0] + "/" + f[1] + "/" + f[2] + " master",
                        base.formats(f[0], f[1], f[2], true)));
            }
            // Every operand 16-bit, no master: the _narrow entry point (16-element packed vectors), in
            // bf16 throughout and with fp16 params and grads (states may not be fp16).
            out.add(Arguments.of(v.getKey() + " bf16 no master, clipped",
                    base.formats(Precision.BF16, Precision.BF16, Precision.BF16, false).pipeline(NonFinitePolicy.PROPAGATE, 1.0, 1, -1)));
            out.add(Arguments.of(v.getKey() + " FP16/FP16/BF16 no master",
                    base.formats(Precision.FP16, Precision.FP16, Precision.BF16, false)));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("scenarios")
    void cudaEqualsTheCpuBackendBitForBit(String name, Scenario scenario) {
        Scenario.assertSame(scenario.run(Backend.CPU), scenario.run(Backend.CUDA), name);
    }

    @Test
    void aSkippedStepReportsItsOwnClipCoefficient() {
        GradientPipelineTest.assertSkippedStepsReportTheirOwnClipCoefficient(Backend.CUDA);
    }

    @Test
    void graphReplaysEqualTheCpuBackend() {
        Scenario s = Scenario.of(Adam.adamW().optLearningRate(1e-2).build(), SIZES)
                .formats(Precision.BF16, Precision.BF16, Precision.FP32, true)
                .pipeline(NonFinitePolicy.SKIP_STEP, 1.5, 256, 4).capturedSteps();
        Scenario.assertSame(s.run(Backend.CPU), s.run(Backend.CUDA), "graph");
    }

    /** The layer-wise kernels' three launches (norm pass, per-tensor sums, update) inside a captured graph. */
    @Test
    void layerwiseGraphReplaysEqualTheCpuBackend() {
        for (OptimizerConfig config : List.of(Lamb.builder().optLearningRate(1e-2).build(),
                Lars.builder().optLearningRate(0.1).optMomentum(0.9).optWeightDecay(1e-3).optTrustCoefficient(0.02).build())) {
            Scenario s = Scenario.of(config, SIZES).formats(Precision.BF16, Precision.BF16, Precision.FP32, true)
                    .pipeline(NonFinitePolicy.SKIP_STEP, 1.5, 256, 4).capturedSteps();
            Scenario.assertSame(s.run(Backend.CPU), s.run(Backend.CUDA), config.algorithm() + " graph");
        }
    }

    /** 1000 tiny tensors, replayed from a graph 200 times: still bit-exact, and the counter is on the device. */
    @Test
    void aThousandTinyTensorsReplayFromOneGraph() {
        int[] sizes = new int[1000];
        for (int i = 0; i < sizes.length; i++) sizes[i] = 1 + i % 13;
        Scenario s = new Scenario(Adam.builder().build(), Precision.FP32, Precision.FP32, Precision.FP32, true,
                NonFinitePolicy.SKIP_STEP, 0, 1, sizes, 200, -1, true);
        Scenario.Result cpu = s.run(Backend.CPU);
        Scenario.Result cuda = s.run(Backend.CUDA);
        Scenario.assertSame(cpu, cuda, "1000 tensors");
        assertEquals(200, cuda.reports().get(199).step());
        assertTrue(cuda.reports().stream().noneMatch(StepReport::skipped));
    }
}
