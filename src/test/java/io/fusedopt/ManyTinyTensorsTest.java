package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import io.fusedopt.cpu.FastCpuEngine;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Thousands of tiny tensors, the layout the CPU backends keep for them: side by side in shared
 * arrays, stepped from flat tables, runs of them updated as one range, and on CPU_FAST claimed by
 * the workers many at a time. Each tensor is updated exactly as if it were alone, whether or not
 * it is in a run, and CPU_FAST equals CPU bit for bit with any thread count, with 16-bit formats,
 * clipping, loss scaling and a skipped step.
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

    /**
     * Runs of small tensors (updated as one range, their elements moved side by side) give every
     * tensor the bits it gets where no run can form: the same model with its params and grads in
     * the caller's arrays (wrapHost), which are never moved. Over two groups of one kernel (one
     * with AMSGrad's extra state), a caller's tensor amid the allocated ones, a tensor frozen at
     * first, tensors added after steps (the runs are formed again over moved elements), a gradient
     * scale (the gradient unscaled into scratch), zeroGrad, and a checkpoint loaded back.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void runsGiveTheBitsOfTensorsNeverMoved(Backend backend) throws IOException {
        int[] sizes = sizes(90);
        try (Model runs = new Model(backend, true); Model reference = new Model(backend, false)) {
            for (Model m : List.of(runs, reference)) {
                for (int t = 0; t < 80; t++) m.add(t, sizes[t], t < 40 ? 0 : 1);
                m.parameters.get(7).freeze();
            }
            for (int step = 0; step < 3; step++) {
                if (step == 2) {
                    for (Model m : List.of(runs, reference)) {
                        m.parameters.get(7).unfreeze();
                        for (int t = 80; t < sizes.length; t++) m.add(t, sizes[t], 1); // registered together: one entry, one run
                        m.optimizer.setGradScale(4.0);
                    }
                }
                for (Model m : List.of(runs, reference)) m.step(step);
                assertSameTensors(reference, runs, "after step " + step);
            }
            byte[] checkpoint = runs.optimizer.saveToBytes();
            for (Model m : List.of(runs, reference)) {
                m.optimizer.zeroGrad();
                m.optimizer.step(); // zero gradients: only the moments' decay moves anything
            }
            assertSameTensors(reference, runs, "after zeroGrad");
            for (Model m : List.of(runs, reference)) {
                m.optimizer.load(checkpoint); // into the moved elements: the next step must read what it wrote
                m.step(3);
            }
            assertSameTensors(reference, runs, "after a load");
        }
    }

    /** A model of tiny tensors in two Adam groups; its params and grads allocated by the optimizer, or the caller's arrays. */
    private static final class Model implements AutoCloseable {
        final DeviceOptimizer optimizer;
        final boolean allocated;
        final ParamGroup[] groups;
        final List<Parameter> parameters = new ArrayList<>();
        final List<TensorBuffer> grads = new ArrayList<>();

        Model(Backend backend, boolean allocated) {
            this.allocated = allocated;
            optimizer = DeviceOptimizer.create(backend, Adam.adamW().optLearningRate(1e-2).build());
            groups = new ParamGroup[] {optimizer.addGroup(Adam.adamW().optLearningRate(1e-2).optAmsgrad(true).build()),
                    optimizer.addGroup()};
        }

        /** Tensor t, its initial values drawn from seed t; tensor 11 is the caller's array in both models. */
        void add(int t, int size, int group) {
            boolean own = allocated && t != 11;
            TensorBuffer p = own ? optimizer.allocate(size) : optimizer.wrapHost(new float[size]);
            TensorBuffer g = own ? optimizer.allocate(size) : optimizer.wrapHost(new float[size]);
            p.copyFrom(Scenario.gaussian(new Random(t), size, 1f));
            parameters.add(groups[group].add("t" + t, p, g));
            grads.add(g);
        }

        /** Gradients drawn from the step's and the tensor's number, then a step. */
        void step(int step) {
            for (int t = 0; t < grads.size(); t++) {
                grads.get(t).copyFrom(Scenario.gaussian(new Random(1000L * step + t), (int) grads.get(t).length(), 1f));
            }
            optimizer.step();
        }

        @Override
        public void close() {
            optimizer.close();
        }
    }

    private static void assertSameTensors(Model expected, Model actual, String when) {
        assertEquals(expected.parameters.size(), actual.parameters.size());
        for (int t = 0; t < expected.parameters.size(); t++) {
            Parameter e = expected.parameters.get(t), a = actual.parameters.get(t);
            CudaEquivalenceTest.assertBitEqual(e.param().toArray(), a.param().toArray(), "param of " + e.name() + " " + when);
            for (StateKind kind : e.stateKinds()) {
                CudaEquivalenceTest.assertBitEqual(e.state(kind).toArray(), a.state(kind).toArray(),
                        kind.stateName() + " of " + e.name() + " " + when);
            }
        }
    }
}
