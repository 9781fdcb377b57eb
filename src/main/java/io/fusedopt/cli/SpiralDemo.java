package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.TensorBuffer;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * A small classifier trained with each optimizer: a 2-32-3 perceptron (ReLU, softmax cross-entropy)
 * on three interleaved spirals of 100 points each, full batch. The forward and backward passes run
 * on the host; the weights live in one fusedopt tensor that the optimizer updates. Every optimizer
 * starts from the same weights; the loss curve and the final training accuracy are recorded.
 */
final class SpiralDemo {
    private SpiralDemo() {}

    static final int CLASSES = 3, PER_CLASS = 100, HIDDEN = 32;
    /** Weights in one tensor: w1 [2][HIDDEN], b1 [HIDDEN], w2 [HIDDEN][CLASSES], b2 [CLASSES]. */
    static final int W1 = 0, B1 = W1 + 2 * HIDDEN, W2 = B1 + HIDDEN, B2 = W2 + HIDDEN * CLASSES, PARAMS = B2 + CLASSES;

    record Training(double[] loss, double accuracy) {}

    /** The optimizers and their learning rates, in drawing order: each algorithm's own ({@code Algorithm.demoConfigs}). */
    static Map<String, OptimizerConfig> optimizers() {
        return Algorithms.demoConfigs(Algorithm.DemoProblem.SPIRALS);
    }

    /** The data: x [n][2], label [n]. */
    static double[][] points(int[] labels) {
        Random random = new Random(3);
        double[][] x = new double[CLASSES * PER_CLASS][2];
        for (int c = 0; c < CLASSES; c++) {
            for (int i = 0; i < PER_CLASS; i++) {
                double r = (double) i / (PER_CLASS - 1);
                double angle = c * 4.0 + r * 4.0 + random.nextGaussian() * 0.2;
                int k = c * PER_CLASS + i;
                x[k][0] = r * Math.sin(angle);
                x[k][1] = r * Math.cos(angle);
                labels[k] = c;
            }
        }
        return x;
    }

    static float[] initialWeights() {
        Random random = new Random(5);
        float[] w = new float[PARAMS];
        for (int i = 0; i < 2 * HIDDEN; i++) w[W1 + i] = (float) (random.nextGaussian() * Math.sqrt(2.0 / 2));
        for (int i = 0; i < HIDDEN * CLASSES; i++) w[W2 + i] = (float) (random.nextGaussian() * Math.sqrt(2.0 / HIDDEN));
        return w;
    }

    static Map<String, Training> train(Backend backend, int steps) {
        int[] labels = new int[CLASSES * PER_CLASS];
        double[][] x = points(labels);
        Map<String, Training> out = new LinkedHashMap<>();
        for (Map.Entry<String, OptimizerConfig> e : optimizers().entrySet()) {
            double[] loss = new double[steps];
            double accuracy;
            try (DeviceOptimizer opt = DeviceOptimizer.create(backend, e.getValue())) {
                TensorBuffer weights = opt.allocate(PARAMS);
                TensorBuffer grads = opt.allocate(PARAMS);
                weights.copyFrom(initialWeights());
                opt.addGroup().add("mlp", weights, grads);
                float[] g = new float[PARAMS];
                for (int t = 0; t < steps; t++) {
                    loss[t] = lossAndGradient(weights.toArray(), x, labels, g);
                    grads.copyFrom(g);
                    opt.step();
                }
                accuracy = accuracy(weights.toArray(), x, labels);
            }
            out.put(e.getKey(), new Training(loss, accuracy));
        }
        return out;
    }

    /** Mean cross-entropy over the data set; {@code grad} receives its gradient. */
    static double lossAndGradient(float[] w, double[][] x, int[] labels, float[] grad) {
        int n = x.length;
        double[] g = new double[PARAMS];
        double total = 0;
        double[] hidden = new double[HIDDEN];
        double[] p = new double[CLASSES];
        for (int k = 0; k < n; k++) {
            forward(w, x[k], hidden, p);
            total -= Math.log(Math.max(p[labels[k]], 1e-300));
            p[labels[k]] -= 1; // dL/dlogits
            for (int c = 0; c < CLASSES; c++) {
                double d = p[c] / n;
                g[B2 + c] += d;
                for (int h = 0; h < HIDDEN; h++) g[W2 + h * CLASSES + c] += hidden[h] * d;
            }
            for (int h = 0; h < HIDDEN; h++) {
                if (hidden[h] <= 0) continue;
                double dh = 0;
                for (int c = 0; c < CLASSES; c++) dh += w[W2 + h * CLASSES + c] * p[c] / n;
                g[B1 + h] += dh;
                g[W1 + h] += x[k][0] * dh;
                g[W1 + HIDDEN + h] += x[k][1] * dh;
            }
        }
        for (int i = 0; i < PARAMS; i++) grad[i] = (float) g[i];
        return total / n;
    }

    /** Hidden activations and class probabilities of one point. */
    static void forward(float[] w, double[] point, double[] hidden, double[] probabilities) {
        for (int h = 0; h < HIDDEN; h++) {
            double a = w[B1 + h] + point[0] * w[W1 + h] + point[1] * w[W1 + HIDDEN + h];
            hidden[h] = Math.max(0, a);
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < CLASSES; c++) {
            double z = w[B2 + c];
            for (int h = 0; h < HIDDEN; h++) z += hidden[h] * w[W2 + h * CLASSES + c];
            probabilities[c] = z;
            max = Math.max(max, z);
        }
        double sum = 0;
        for (int c = 0; c < CLASSES; c++) sum += probabilities[c] = Math.exp(probabilities[c] - max);
        for (int c = 0; c < CLASSES; c++) probabilities[c] /= sum;
    }

    static double accuracy(float[] w, double[][] x, int[] labels) {
        double[] hidden = new double[HIDDEN], p = new double[CLASSES];
        int right = 0;
        for (int k = 0; k < x.length; k++) {
            forward(w, x[k], hidden, p);
            int best = 0;
            for (int c = 1; c < CLASSES; c++) if (p[c] > p[best]) best = c;
            if (best == labels[k]) right++;
        }
        return (double) right / x.length;
    }
}
