package io.fusedopt;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Test helper: one optimizer configuration with storage formats and gradient-pipeline options,
 * run for some steps on deterministic data; the result holds every param, master and state
 * element and every step's report, so runs on two backends (or two ways) can be compared bit for bit.
 */
record Scenario(OptimizerConfig config, Precision param, Precision grad, Precision state, boolean master,
                NonFinitePolicy policy, double maxGradNorm, double gradScale, int[] sizes, int steps, int nonFiniteStep,
                boolean captured) {

    static Scenario of(OptimizerConfig config, int... sizes) {
        return new Scenario(config, Precision.FP32, Precision.FP32, Precision.FP32, true, NonFinitePolicy.PROPAGATE, 0, 1,
                sizes, 6, -1, false);
    }

    Scenario formats(Precision p, Precision g, Precision s, boolean withMaster) {
        return new Scenario(config, p, g, s, withMaster, policy, maxGradNorm, gradScale, sizes, steps, nonFiniteStep, captured);
    }

    Scenario pipeline(NonFinitePolicy newPolicy, double maxNorm, double scale, int badStep) {
        return new Scenario(config, param, grad, state, master, newPolicy, maxNorm, scale, sizes, steps, badStep, captured);
    }

    Scenario capturedSteps() {
        return new Scenario(config, param, grad, state, master, policy, maxGradNorm, gradScale, sizes, steps, nonFiniteStep, true);
    }

    /** Every float of the outcome, labelled, plus the reports. */
    record Result(List<String> labels, List<float[]> values, List<StepReport> reports) {}

    Result run(Backend backend) {
        try (DeviceOptimizer opt = builder(backend).build()) {
            return runOn(opt);
        }
    }

    /** A builder with this scenario's options, for a test that adds its own. */
    DeviceOptimizer.Builder builder(Backend backend) {
        return DeviceOptimizer.builder(config).optBackend(backend).optStatePrecision(state)
                .optMasterWeights(master).optNonFinitePolicy(policy).optMaxGradNorm(maxGradNorm);
    }

    /** Runs the scenario on a new optimizer built by {@link #builder}; the caller closes it. */
    Result runOn(DeviceOptimizer opt) {
        Random random = new Random(1234 + sizes.length);
        ParamGroup first = opt.addGroup();
        ParamGroup second = opt.addGroup(config.withLearningRate(config.learningRate() * 0.5));
        List<Parameter> params = new ArrayList<>();
        List<TensorBuffer> grads = new ArrayList<>();
        for (int i = 0; i < sizes.length; i++) {
            TensorBuffer p = opt.allocate(sizes[i], param);
            TensorBuffer g = opt.allocate(sizes[i], grad);
            p.copyFrom(gaussian(random, sizes[i], 1f));
            params.add((i % 2 == 0 ? first : second).add("t" + i, p, g));
            grads.add(g);
        }
        if (gradScale != 1) opt.setGradScale(gradScale);
        StepGraph graph = captured ? opt.captureStep() : null;
        List<StepReport> reports = new ArrayList<>();
        for (int t = 1; t <= steps; t++) {
            for (int i = 0; i < sizes.length; i++) {
                float[] g = gaussian(random, sizes[i], (float) gradScale * (t % 3 == 0 ? 1e-2f : 1f));
                if (t == nonFiniteStep && i == sizes.length - 1) g[g.length / 2] = Float.NaN;
                if (t == nonFiniteStep && i == 0) g[0] = Float.POSITIVE_INFINITY;
                grads.get(i).copyFrom(g);
            }
            if (t == steps / 2) first.setLearningRate(first.config().learningRate() * 0.5);
            try {
                if (graph != null) graph.replay();
                else opt.step();
            } catch (NonFiniteGradientException e) {
                // recorded through the report below
            }
            reports.add(opt.lastStep());
        }
        List<String> labels = new ArrayList<>();
        List<float[]> values = new ArrayList<>();
        for (Parameter p : params) {
            labels.add("param " + p.name());
            values.add(p.param().toArray());
            p.masterWeights().ifPresent(m -> {
                labels.add("master " + p.name());
                values.add(m.toArray());
            });
            for (StateKind kind : p.stateKinds()) {
                labels.add(kind.stateName() + " " + p.name());
                values.add(p.state(kind).toArray());
            }
        }
        return new Result(labels, values, reports);
    }

    static float[] gaussian(Random random, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian() * scale;
        return v;
    }

    /** Asserts two results equal bit for bit (NaNs of any payload are equal). */
    static void assertSame(Result expected, Result actual, String where) {
        org.junit.jupiter.api.Assertions.assertEquals(expected.labels(), actual.labels(), where);
        for (int i = 0; i < expected.values().size(); i++) {
            CudaEquivalenceTest.assertBitEqual(expected.values().get(i), actual.values().get(i),
                    where + " " + expected.labels().get(i));
        }
        org.junit.jupiter.api.Assertions.assertEquals(expected.reports(), actual.reports(), where + " step reports");
    }
}
