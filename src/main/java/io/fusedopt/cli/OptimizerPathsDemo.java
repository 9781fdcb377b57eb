package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.TensorBuffer;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The paths of six optimizers on f(x, y) = x^2/20 + y^2 from (-7, 2), each step taken by fusedopt on
 * a two-element tensor, the gradient (x/10, 2y) computed on the host. The valley is 20 times flatter
 * along x than along y: plain SGD zig-zags across it, momentum overshoots along it, Adagrad's
 * ever-growing accumulator makes it stall on the way, RMSProp and Adam rescale each coordinate.
 */
final class OptimizerPathsDemo {
    private OptimizerPathsDemo() {}

    static final double START_X = -7, START_Y = 2;

    static double f(double x, double y) {
        return x * x / 20 + y * y;
    }

    /** The optimizers and their learning rates, in drawing order. */
    static Map<String, OptimizerConfig> optimizers() {
        return Algorithms.demoConfigs(Algorithm.DemoProblem.NARROW_VALLEY);
    }

    /** Each optimizer's path: {@code steps + 1} points, the start first. */
    static Map<String, Charts.Line> paths(Backend backend, int steps) {
        Map<String, Charts.Line> paths = new LinkedHashMap<>();
        for (Map.Entry<String, OptimizerConfig> e : optimizers().entrySet()) {
            double[] xs = new double[steps + 1], ys = new double[steps + 1];
            try (DeviceOptimizer opt = DeviceOptimizer.create(backend, e.getValue())) {
                TensorBuffer p = opt.allocate(2);
                TensorBuffer g = opt.allocate(2);
                p.copyFrom(new float[] {(float) START_X, (float) START_Y});
                opt.addGroup().add("xy", p, g);
                for (int t = 0; t <= steps; t++) {
                    float[] xy = p.toArray();
                    xs[t] = xy[0];
                    ys[t] = xy[1];
                    if (t == steps) break;
                    g.copyFrom(new float[] {xy[0] / 10, 2 * xy[1]});
                    opt.step();
                }
            }
            paths.put(e.getKey(), new Charts.Line(e.getKey(), xs, ys));
        }
        return paths;
    }

    /** The level set f = level, an ellipse of half-axes sqrt(20 level) and sqrt(level). */
    static Charts.Line contour(double level) {
        int n = 181;
        double[] x = new double[n], y = new double[n];
        for (int i = 0; i < n; i++) {
            double a = 2 * Math.PI * i / (n - 1);
            x[i] = Math.sqrt(20 * level) * Math.cos(a);
            y[i] = Math.sqrt(level) * Math.sin(a);
        }
        return new Charts.Line(String.format("f = %.2f", level), x, y);
    }
}
