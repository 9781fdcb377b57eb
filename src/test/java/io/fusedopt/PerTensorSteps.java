package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The scenarios of frozen and late-added tensors, shared by the CPU and CUDA test classes. Each
 * tensor's gradient at its own step k depends only on its name and k, so an optimizer that only
 * ever held that tensor, stepped k times with the same gradients, is the reference its values must
 * equal bit for bit. A frozen tensor's gradient is filled with NaN before each step: a step that
 * read it would spread NaN into the tensor.
 */
final class PerTensorSteps {
    private PerTensorSteps() {}

    /** A tensor of the scenarios: its name, length and param format. */
    record Spec(String name, int length, Precision precision) {}

    static final Spec A = new Spec("a", 1000, Precision.FP32);
    static final Spec B = new Spec("b", 37, Precision.BF16);
    static final Spec C = new Spec("c", 300, Precision.FP32);
    static final Spec D = new Spec("d", 65, Precision.BF16);

    /** The algorithms whose updates depend on the tensor's own step: bias corrections, the first-step rule, the rate decay. */
    static List<OptimizerConfig> stepDependentConfigs() {
        return List.of(Adam.adamW().optLearningRate(1e-2).build(),
                Momentum.builder().optLearningRate(1e-2).setMomentum(0.9).optDampening(0.1).build(),
                Adagrad.builder().optLearningRate(1e-1).optLrDecay(0.05).build());
    }

    static float[] initialParam(Spec s) {
        float[] p = new float[s.length()];
        for (int i = 0; i < p.length; i++) p[i] = (float) Math.sin(0.37 * i + s.name().hashCode()) * 0.5f;
        return p;
    }

    /** The gradient a tensor sees at its own step {@code ownStep} (1-based). */
    static float[] gradient(Spec s, long ownStep) {
        float[] g = new float[s.length()];
        for (int i = 0; i < g.length; i++) g[i] = (float) Math.cos(0.11 * i * ownStep + 0.7 * ownStep + s.name().length()) * 0.1f;
        return g;
    }

    /** An optimizer and its tensors by name; {@link #step()} feeds each active tensor its own step's gradient. */
    static final class Run implements AutoCloseable {
        final DeviceOptimizer opt;
        final Map<String, Parameter> params = new LinkedHashMap<>();
        final Map<String, Spec> specs = new LinkedHashMap<>();

        Run(Backend backend) {
            this(backend, stepDependentConfigs().get(0));
        }

        Run(Backend backend, OptimizerConfig defaults) {
            opt = DeviceOptimizer.builder(defaults).optBackend(backend).optCpuThreads(2).build();
        }

        Parameter add(ParamGroup group, Spec s) {
            TensorBuffer p = opt.allocate(s.length(), s.precision());
            p.copyFrom(initialParam(s));
            Parameter parameter = group.add(s.name(), p, opt.allocate(s.length()));
            params.put(s.name(), parameter);
            specs.put(s.name(), s);
            return parameter;
        }

        Parameter param(Spec s) {
            return params.get(s.name());
        }

        /** Writes every gradient (NaN for a frozen tensor) and takes one step. */
        void step() {
            feed();
            opt.step();
        }

        void feed() {
            for (Parameter p : params.values()) {
                Spec s = specs.get(p.name());
                if (p.isFrozen()) {
                    float[] nan = new float[s.length()];
                    Arrays.fill(nan, Float.NaN);
                    p.grad().copyFrom(nan);
                } else {
                    p.grad().copyFrom(gradient(s, p.stepCount() + 1));
                }
            }
        }

        void steps(int n) {
            for (int i = 0; i < n; i++) step();
        }

        @Override
        public void close() {
            opt.close();
        }
    }

    /** A tensor's param, master weights and states, in a fixed order. */
    static List<float[]> snapshot(Parameter p) {
        List<float[]> out = new ArrayList<>();
        out.add(p.param().toArray());
        p.masterWeights().ifPresent(m -> out.add(m.toArray()));
        for (StateKind kind : p.stateKinds()) out.add(p.state(kind).toArray());
        return out;
    }

    static void assertSameBits(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size(), what + ": arrays");
        for (int j = 0; j < expected.size(); j++) {
            int[] e = bits(expected.get(j));
            int[] a = bits(actual.get(j));
            assertArrayEquals(e, a, what + ": array " + j + " differs in its bits");
        }
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }

    /**
     * The reference: a fresh CPU reference optimizer that only ever held tensor {@code s} (in a
     * group of {@code config}), stepped {@code steps} times with its gradients.
     */
    static List<float[]> reference(OptimizerConfig config, Spec s, int steps) {
        try (Run ref = new Run(Backend.CPU, config)) {
            Parameter p = ref.add(ref.opt.addGroup(), s);
            ref.steps(steps);
            assertEquals(steps, p.stepCount());
            return snapshot(p);
        }
    }

    /**
     * Freezes b after 30 steps and unfreezes it after 100: it continues with its own step 31, equal
     * bit for bit to a reference that stepped it 50 times; a (never frozen) equals one stepped 120
     * times; b does not change while frozen and its NaN gradient is never read.
     */
    static void unfreezingAfter100Steps(Backend backend, OptimizerConfig config) {
        unfreezingAfter100Steps(backend, config, false);
    }

    /** As above; with {@code newGrad}, b is unfrozen with a new gradient buffer (the old one is closed). */
    static void unfreezingAfter100Steps(Backend backend, OptimizerConfig config, boolean newGrad) {
        try (Run run = new Run(backend, config)) {
            ParamGroup group = run.opt.addGroup();
            Parameter a = run.add(group, A);
            Parameter b = run.add(group, B);
            run.steps(30);
            b.freeze();
            assertTrue(b.isFrozen());
            List<float[]> atFreeze = snapshot(b);
            run.steps(70);
            assertEquals(100, run.opt.stepCount());
            assertEquals(30, b.stepCount(), "a frozen tensor's own count stops");
            assertSameBits(atFreeze, snapshot(b), backend + " " + config.algorithm() + ": b while frozen");
            if (newGrad) {
                TensorBuffer oldGrad = b.grad();
                TensorBuffer replacement = run.opt.allocate(B.length()); // float32, as the reference's
                b.unfreeze(replacement);
                assertTrue(b.grad() == replacement, "the new gradient is read from now on");
                oldGrad.close(); // released: it backs nothing any more
            } else {
                b.unfreeze();
            }
            assertFalse(b.isFrozen());
            run.steps(20);
            assertEquals(120, run.opt.stepCount());
            assertEquals(120, a.stepCount());
            assertEquals(50, b.stepCount());
            assertSameBits(reference(config, A, 120), snapshot(a), backend + " " + config.algorithm() + ": a");
            assertSameBits(reference(config, B, 50), snapshot(b), backend + " " + config.algorithm() + ": b after unfreezing");
        }
    }

    /**
     * After 7 steps, a tensor joins the existing group and a new group (another learning rate) gets
     * one: after 13 more steps each late tensor equals a fresh optimizer that held only it for its
     * 13 steps, bit for bit, and the first tensor one stepped 20 times.
     */
    static void lateTensorAndGroup(Backend backend, OptimizerConfig config) {
        OptimizerConfig other = config.withLearningRate(config.learningRate() * 0.5);
        try (Run run = new Run(backend, config)) {
            ParamGroup first = run.opt.addGroup();
            Parameter a = run.add(first, A);
            run.steps(7);
            Parameter c = run.add(first, C);
            assertEquals(0, c.stepCount(), "a late tensor has taken no step");
            Parameter d = run.add(run.opt.addGroup(other), D);
            run.steps(13);
            assertEquals(20, a.stepCount());
            assertEquals(13, c.stepCount());
            assertEquals(13, d.stepCount());
            assertSameBits(reference(config, A, 20), snapshot(a), backend + " " + config.algorithm() + ": a");
            assertSameBits(reference(config, C, 13), snapshot(c), backend + " " + config.algorithm() + ": late tensor c");
            assertSameBits(reference(other, D, 13), snapshot(d), backend + " " + config.algorithm() + ": late group's d");
        }
    }

    /** Registers a, b and c at once, as a program restoring a checkpoint does. */
    static Run registeredForResume(Backend backend) {
        Run run = new Run(backend);
        ParamGroup group = run.opt.addGroup();
        run.add(group, A);
        run.add(group, B);
        run.add(group, C);
        return run;
    }

    /** The run whose checkpoint is taken at step 15: b frozen after 5 steps (own count 5), c added after 10 (own count 5). */
    static Run savedRun(Backend backend) {
        Run run = new Run(backend);
        ParamGroup group = run.opt.addGroup();
        run.add(group, A);
        Parameter b = run.add(group, B);
        run.steps(5);
        b.freeze();
        run.steps(5);
        run.add(group, C);
        run.steps(5);
        return run;
    }

    /** What both runs do after the checkpoint: unfreeze b, 10 more steps. */
    static void continueAfterSave(Run run) {
        run.param(B).unfreeze();
        run.steps(10);
    }

    static void assertCountsAtSave(Run run) {
        assertEquals(15, run.opt.stepCount());
        assertEquals(15, run.param(A).stepCount());
        assertEquals(5, run.param(B).stepCount());
        assertTrue(run.param(B).isFrozen());
        assertEquals(5, run.param(C).stepCount());
        assertFalse(run.param(C).isFrozen());
    }

    /** The saved run continued without interruption and the resumed one end with the same bits and counts. */
    static void assertSameEnd(Run whole, Run resumed, String what) {
        for (Spec s : List.of(A, B, C)) {
            assertEquals(whole.params.get(s.name()).stepCount(), resumed.params.get(s.name()).stepCount(), what + ": " + s.name());
            assertSameBits(snapshot(whole.params.get(s.name())), snapshot(resumed.params.get(s.name())), what + ": " + s.name());
        }
        assertEquals(25, resumed.param(A).stepCount());
        assertEquals(15, resumed.param(B).stepCount());
        assertEquals(15, resumed.param(C).stepCount());
    }
}
