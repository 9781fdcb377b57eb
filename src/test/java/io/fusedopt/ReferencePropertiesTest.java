package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.Test;

/** Properties of the formulas that hold independently of any particular value. */
class ReferencePropertiesTest {
    private static final double EPS = (float) 1e-8;

    /**
     * With a constant gradient g, Adam's normalized step m_hat/(sqrt(v_hat)+eps) equals
     * g/(|g|+eps), within 1e-6 of +-1 for |g| >> eps, at every step, if and only if the bias
     * corrections are applied fresh each step and never stored back into m or v.
     */
    @Test
    void adamNormalizedStepStaysAtOneWithConstantGradient() {
        for (float g : new float[] {1f, 0.37f, -2.5f, 100f}) {
            try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().optLearningRate(0).build())) {
                TensorBuffer p = opt.allocate(1);
                TensorBuffer grad = opt.allocate(1);
                grad.copyFrom(new float[] {g});
                Parameter param = opt.addGroup().add("p", p, grad);
                for (int t = 1; t <= 100; t++) {
                    opt.step();
                    double m = param.state(StateKind.EXP_AVG).toArray()[0];
                    double v = param.state(StateKind.EXP_AVG_SQ).toArray()[0];
                    // the bias corrections of the float32 betas the optimizer runs with
                    double mHat = m / (1 - Math.pow(0.9f, t));
                    double vHat = v / (1 - Math.pow(0.999f, t));
                    double normalized = Math.signum(g) * mHat / (Math.sqrt(vHat) + EPS);
                    assertEquals(1.0, normalized, 1e-6, "g=" + g + ", t=" + t);
                }
            }
        }
    }

    /** The check above has teeth: an Adam that stores the bias corrections into m and v fails it. */
    @Test
    void storingTheBiasCorrectionBackFailsTheNormalizedStepCheck() {
        double b1 = 0.9, b2 = 0.999, g = 1, m = 0, v = 0;
        double worst = 0;
        for (int t = 1; t <= 100; t++) {
            m = b1 * m + (1 - b1) * g;
            v = b2 * v + (1 - b2) * g * g;
            m = m / (1 - Math.pow(b1, t)); // the bug: the corrected value replaces the state...
            v = v / (1 - Math.pow(b2, t));
            double normalized = m / (Math.sqrt(v) + EPS); // ...and is then used as m_hat and v_hat
            worst = Math.max(worst, Math.abs(normalized - 1));
        }
        assertTrue(worst > 0.5, "the buggy variant's normalized step should collapse toward 0; worst deviation " + worst);
    }

    /** The paper and step-size forms differ only through eps: with a negligible eps they agree. */
    @Test
    void adamFormsDifferOnlyThroughEpsilon() {
        List<float[]> grads = randomGradients(64, 20, 1.0f, 11);
        float[] initial = randomVector(64, 12);
        Adam.Builder tinyEps = Adam.builder().optLearningRate(1e-2).optEpsilon(1e-30);
        float[] paper = Trajectory.cpu(tinyEps.optForm(Adam.Form.PAPER).build(), initial, grads);
        float[] stepSize = Trajectory.cpu(tinyEps.optForm(Adam.Form.STEP_SIZE).build(), initial, grads);
        assertClose(paper, stepSize, 1e-5, "forms with eps=1e-30");

        // With gradients near eps the forms differ: the step-size form's eps acts sqrt(bc2) times smaller.
        List<float[]> smallGrads = randomGradients(64, 3, 1e-3f, 13);
        Adam.Builder bigEps = Adam.builder().optLearningRate(1e-2).optEpsilon(1e-3);
        float[] paperSmall = Trajectory.cpu(bigEps.optForm(Adam.Form.PAPER).build(), initial, smallGrads);
        float[] stepSizeSmall = Trajectory.cpu(bigEps.optForm(Adam.Form.STEP_SIZE).build(), initial, smallGrads);
        assertTrue(maxAbsDifference(paperSmall, stepSizeSmall) > 1e-3,
                "with eps comparable to the gradients the two forms must differ");
    }

    /** The two momentum conventions agree while lr is constant and differ once it changes. */
    @Test
    void momentumFormsAgreeUntilTheLearningRateChanges() {
        int n = 32;
        float[] initial = randomVector(n, 21);
        List<float[]> grads = randomGradients(n, 8, 1f, 22);
        Momentum.Builder b = Momentum.builder().optLearningRate(0.05).setMomentum(0.9);
        float[] buffer = runWithSchedule(b.optForm(Momentum.Form.BUFFER).build(), initial, grads, t -> 0.05);
        float[] velocity = runWithSchedule(b.optForm(Momentum.Form.VELOCITY).build(), initial, grads, t -> 0.05);
        assertClose(buffer, velocity, 1e-5, "constant lr");

        DoubleUnaryOperator dropAfterFour = t -> t <= 4 ? 0.05 : 0.005;
        float[] bufferScheduled = runWithSchedule(b.optForm(Momentum.Form.BUFFER).build(), initial, grads, dropAfterFour);
        float[] velocityScheduled = runWithSchedule(b.optForm(Momentum.Form.VELOCITY).build(), initial, grads, dropAfterFour);
        assertTrue(maxAbsDifference(bufferScheduled, velocityScheduled) > 1e-3,
                "after an lr change the buffer form rescales the accumulated momentum, the velocity form does not");
    }

    private static float[] runWithSchedule(OptimizerConfig config, float[] initial, List<float[]> grads,
                                           DoubleUnaryOperator lrAtStep) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer p = opt.allocate(initial.length);
            TensorBuffer g = opt.allocate(initial.length);
            p.copyFrom(initial);
            ParamGroup group = opt.addGroup();
            group.add("p", p, g);
            for (int t = 1; t <= grads.size(); t++) {
                group.setLearningRate(lrAtStep.applyAsDouble(t));
                g.copyFrom(grads.get(t - 1));
                opt.step();
            }
            return p.toArray();
        }
    }

    static float[] randomVector(int n, long seed) {
        Random random = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian();
        return v;
    }

    static List<float[]> randomGradients(int n, int steps, float scale, long seed) {
        List<float[]> out = new ArrayList<>();
        for (int s = 0; s < steps; s++) {
            float[] g = randomVector(n, seed * 1000 + s);
            for (int i = 0; i < n; i++) g[i] *= scale;
            out.add(g);
        }
        return out;
    }

    private static double maxAbsDifference(float[] a, float[] b) {
        double worst = 0;
        for (int i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((double) a[i] - b[i]));
        return worst;
    }

    private static void assertClose(float[] a, float[] b, double relative, String label) {
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], relative * Math.max(1, Math.abs(a[i])), label + " at " + i);
        }
    }
}
