package io.fusedopt.cli;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.TensorBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Adam's normalized step {@code m_hat / (sqrt(v_hat) + eps)} over the first steps, for a constant,
 * a growing and a noisy gradient: computed by fusedopt (bias correction fresh each step) and by the
 * classic bug that stores the corrected moments back into m and v. With a constant gradient the
 * correct step is 1 from the first step on; the bug's v_hat compounds its correction (1/(1-beta2^t)
 * of an already corrected value) and the step falls toward 0.
 */
final class AdamBiasCorrectionDemo {
    private AdamBiasCorrectionDemo() {}

    static final double BETA1 = 0.9, BETA2 = 0.999, EPS = 1e-8;
    static final List<String> REGIMES = List.of("constant", "growing", "noisy");

    /** The gradient of {@code regime} at step t (1-based): 1; 1 + t/50; 1 + N(0, 1) from a fixed seed. */
    static double[] gradients(String regime, int steps) {
        double[] g = new double[steps];
        Random random = new Random(11);
        for (int t = 1; t <= steps; t++) {
            g[t - 1] = switch (regime) {
                case "constant" -> 1.0;
                case "growing" -> 1.0 + t / 50.0;
                case "noisy" -> 1.0 + random.nextGaussian();
                default -> throw new IllegalArgumentException(regime);
            };
        }
        return g;
    }

    /**
     * The normalized steps fusedopt takes: the param is set to 0 before each step and read after,
     * so {@code -param / lr} is the step (lr = 1).
     */
    static double[] correct(Backend backend, double[] gradients) {
        double[] steps = new double[gradients.length];
        Adam adam = Adam.builder().optLearningRate(1.0).optBetas(BETA1, BETA2).optEpsilon(EPS).build();
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, adam)) {
            TensorBuffer p = opt.allocate(1);
            TensorBuffer g = opt.allocate(1);
            opt.addGroup().add("x", p, g);
            for (int t = 0; t < gradients.length; t++) {
                p.copyFrom(new float[] {0f});
                g.copyFrom(new float[] {(float) gradients[t]});
                opt.step();
                steps[t] = -p.toArray()[0];
            }
        }
        return steps;
    }

    /** The bug: m_hat and v_hat are written back into m and v, so the next step corrects them again. */
    static double[] storedBack(double[] gradients) {
        double[] steps = new double[gradients.length];
        double m = 0, v = 0;
        for (int t = 1; t <= gradients.length; t++) {
            double g = gradients[t - 1];
            m = BETA1 * m + (1 - BETA1) * g;
            v = BETA2 * v + (1 - BETA2) * g * g;
            m = m / (1 - Math.pow(BETA1, t));
            v = v / (1 - Math.pow(BETA2, t));
            steps[t - 1] = m / (Math.sqrt(v) + EPS);
        }
        return steps;
    }

    /** Six lines: each regime correct and stored back. */
    static List<Charts.Line> lines(Backend backend, int steps) {
        List<Charts.Line> lines = new ArrayList<>();
        for (String regime : REGIMES) {
            double[] g = gradients(regime, steps);
            lines.add(new Charts.Line(regime + ", fusedopt (fresh correction)", Charts.steps(steps), correct(backend, g)));
            lines.add(new Charts.Line(regime + ", bug (stored back)", Charts.steps(steps), storedBack(g)));
        }
        return lines;
    }
}
