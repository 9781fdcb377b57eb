package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.fusedopt.cpu.FastCpuEngine;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Thousands of tiny tensors, the layout the CPU backends keep for them: side by side in shared
 * arrays, stepped from flat per-chunk tables, and on CPU_FAST claimed by the workers many chunks at
 * a time. Each tensor is updated exactly as if it were alone, and CPU_FAST equals CPU bit for bit
 * with any thread count, with 16-bit formats, clipping, loss scaling and a skipped step.
 */
class ManyTinyTensorsTest {
    /**
     * Mostly 1 to 9 elements, with tensors around the largest that share arrays (4096) and around
     * a vector's width, so that carved and separately allocated tensors alternate.
     */
    static int[] sizes(int count) {
        int[] sizes = new int[count];
        for (int i = 0; i < count; i++) sizes[i] = 1 + (i * 7) % 9;
        sizes[count / 3] = 4096;
        sizes[count / 3 + 1] = 4097;
        sizes[count / 2] = 17;
        return sizes;
    }

    @ParameterizedTest(name = "{0} threads")
    @ValueSource(ints = {1, 3})
    void fastBackendEqualsTheReference(int threads) {
        Scenario s = Scenario.of(Adam.adamW().optAmsgrad(true).build(), sizes(2500))
                .pipeline(NonFinitePolicy.SKIP_STEP, 1.0, 64, 4);
        Scenario.Result fast;
        try (DeviceOptimizer opt = s.builder(Backend.CPU_FAST).optCpuThreads(threads).build()) {
            fast = s.runOn(opt);
        }
        Scenario.assertSame(s.run(Backend.CPU), fast, threads + " threads");
    }

    @ParameterizedTest(name = "{0} threads")
    @ValueSource(ints = {1, 2})
    void sixteenBitFormatsWithMasterEqualTheReference(int threads) {
        Scenario s = Scenario.of(RmsProp.builder().optCentered(true).optMomentum(0.9).build(), sizes(1500))
                .formats(Precision.BF16, Precision.FP16, Precision.BF16, true);
        Scenario.Result fast;
        try (DeviceOptimizer opt = s.builder(Backend.CPU_FAST).build(new FastCpuEngine(threads, 16))) {
            fast = s.runOn(opt);
        }
        Scenario.assertSame(s.run(Backend.CPU), fast, threads + " threads");
    }

    /**
     * One optimizer over 300 tiny tensors gives each tensor the bits an optimizer over that tensor
     * alone gives it: no tensor reads or writes another's elements in the shared arrays, and each
     * chunk of the flat tables names its own tensor's operands.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void eachTensorIsUpdatedAsIfAlone(Backend backend) {
        OptimizerConfig config = Adam.builder().optLearningRate(1e-2).build();
        int[] sizes = sizes(300);
        float[][] initial = new float[sizes.length][];
        float[][][] gradients = new float[3][sizes.length][];
        Random random = new Random(21);
        for (int i = 0; i < sizes.length; i++) initial[i] = Scenario.gaussian(random, sizes[i], 1f);
        for (float[][] step : gradients) for (int i = 0; i < sizes.length; i++) step[i] = Scenario.gaussian(random, sizes[i], 1f);

        List<float[]> together = new ArrayList<>();
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, config)) {
            ParamGroup group = opt.addGroup();
            List<TensorBuffer> grads = new ArrayList<>();
            List<Parameter> params = new ArrayList<>();
            for (int i = 0; i < sizes.length; i++) {
                TensorBuffer p = opt.allocate(sizes[i]);
                TensorBuffer g = opt.allocate(sizes[i]);
                p.copyFrom(initial[i]);
                params.add(group.add("t" + i, p, g));
                grads.add(g);
            }
            for (float[][] step : gradients) {
                for (int i = 0; i < sizes.length; i++) grads.get(i).copyFrom(step[i]);
                opt.step();
            }
            for (Parameter p : params) {
                together.add(p.param().toArray());
                together.add(p.state(StateKind.EXP_AVG_SQ).toArray());
            }
        }
        for (int i = 0; i < sizes.length; i++) {
            try (DeviceOptimizer alone = DeviceOptimizer.create(backend, config)) {
                TensorBuffer p = alone.allocate(sizes[i]);
                TensorBuffer g = alone.allocate(sizes[i]);
                p.copyFrom(initial[i]);
                Parameter param = alone.addGroup().add("t" + i, p, g);
                for (float[][] step : gradients) {
                    g.copyFrom(step[i]);
                    alone.step();
                }
                CudaEquivalenceTest.assertBitEqual(param.param().toArray(), together.get(2 * i), "param of tensor " + i);
                CudaEquivalenceTest.assertBitEqual(param.state(StateKind.EXP_AVG_SQ).toArray(), together.get(2 * i + 1),
                        "exp_avg_sq of tensor " + i);
            }
            assertNotEquals(initial[i][0], together.get(2 * i)[0], "tensor " + i + " was updated");
        }
        assertEquals(2 * sizes.length, together.size());
    }
}
