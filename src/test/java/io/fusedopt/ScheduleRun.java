package io.fusedopt;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;

/**
 * Test helper for schedules and dynamic loss scaling: Adam (or any configuration) over three
 * tensors in two groups, each group with its own schedule, for a range of steps whose gradients
 * depend only on the step (so a run split by a checkpoint sees the same ones). Steps in
 * {@code overflowSteps} get an infinity in their gradient, as an overflowed backward pass would;
 * gradients are multiplied by the loss scale the step will read them with.
 */
final class ScheduleRun implements AutoCloseable {
    static final int[] SIZES = {5, 70_001, 300};

    final DeviceOptimizer opt;
    final List<Parameter> params = new ArrayList<>();
    /** Per step: the learning rates lastLearningRates() gave before it, the report and scaler state after it. */
    final List<String> log = new ArrayList<>();
    private final Set<Integer> overflowSteps;
    private StepGraph graph;

    ScheduleRun(DeviceOptimizer.Builder builder, OptimizerConfig config, LrSchedule first, LrSchedule second,
                Set<Integer> overflowSteps) {
        this.opt = builder.build();
        this.overflowSteps = overflowSteps;
        ParamGroup a = opt.addGroup();
        ParamGroup b = opt.addGroup(config.withLearningRate(config.learningRate() / 3));
        if (first != null) a.setSchedule(first);
        if (second != null) b.setSchedule(second);
        Random random = new Random(7);
        for (int i = 0; i < SIZES.length; i++) {
            TensorBuffer p = opt.allocate(SIZES[i]);
            p.copyFrom(Scenario.gaussian(random, SIZES[i], 1f));
            params.add((i == 1 ? b : a).add("layer" + i + "/weight", p, opt.allocate(SIZES[i])));
        }
    }

    static DeviceOptimizer.Builder builder(Backend backend, OptimizerConfig config) {
        return DeviceOptimizer.builder(config).optBackend(backend).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP);
    }

    /** Steps [from, to): by step() or, when {@code captured}, by replaying one captured graph. */
    ScheduleRun steps(int from, int to, boolean captured) {
        if (captured && graph == null) graph = opt.captureStep();
        for (int t = from; t < to; t++) {
            double scale = opt.dynamicLossScaling().isPresent() ? opt.lossScaleState().scale() : 1.0;
            Random random = new Random(1000 + t);
            for (Parameter p : params) {
                float[] g = Scenario.gaussian(random, (int) p.length(), 1f);
                for (int k = 0; k < g.length; k++) g[k] = (float) (g[k] * scale);
                if (overflowSteps.contains(t) && p == params.get(1)) g[12_345] = Float.POSITIVE_INFINITY;
                p.grad().copyFrom(g);
            }
            String lrs = Arrays.toString(opt.lastLearningRates());
            if (captured) graph.replay();
            else opt.step();
            StepReport r = opt.lastStep();
            String scaler = opt.dynamicLossScaling().isPresent() ? " " + opt.lossScaleState() : "";
            log.add("t=" + t + " lr=" + lrs + " " + r + scaler);
        }
        return this;
    }

    /** Every param and state element as raw bits, in a fixed order. */
    List<int[]> snapshot() {
        List<int[]> out = new ArrayList<>();
        for (Parameter p : params) {
            out.add(bits(p.param().toArray()));
            for (StateKind k : p.stateKinds()) out.add(bits(p.state(k).toArray()));
        }
        return out;
    }

    /** Asserts two snapshots equal bit for bit, naming the first array and element that differ. */
    static void assertSameBits(List<int[]> expected, List<int[]> actual, String what) {
        org.junit.jupiter.api.Assertions.assertEquals(expected.size(), actual.size(), what);
        for (int i = 0; i < expected.size(); i++) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(expected.get(i), actual.get(i), what + ": array " + i);
        }
    }

    void save(Path file) throws java.io.IOException {
        opt.save(file);
    }

    void load(Path file) throws java.io.IOException {
        opt.load(file);
    }

    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }

    @Override
    public void close() {
        if (graph != null) graph.close();
        opt.close();
    }
}
