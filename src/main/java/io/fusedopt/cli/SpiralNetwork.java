package io.fusedopt.cli;

import java.util.Random;

/**
 * A 2-H-3 perceptron (ReLU, softmax cross-entropy) on three interleaved spirals of 100 points
 * each, full batch: the forward and backward passes run on the host, the weights lie in one tensor
 * that an optimizer updates. The width H is the demo's choice: 32 for the algorithms' chart, wider
 * where a tensor must be large enough for 8-bit states.
 */
final class SpiralNetwork {
    static final int CLASSES = 3, PER_CLASS = 100;

    final int hidden;
    /** Weights in one tensor: w1 [2][hidden], b1 [hidden], w2 [hidden][CLASSES], b2 [CLASSES]. */
    final int w1, b1, w2, b2, params;

    SpiralNetwork(int hidden) {
        this.hidden = hidden;
        w1 = 0;
        b1 = w1 + 2 * hidden;
        w2 = b1 + hidden;
        b2 = w2 + hidden * CLASSES;
        params = b2 + CLASSES;
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

    /** He initialization, zero biases, from a fixed seed. */
    float[] initialWeights() {
        Random random = new Random(5);
        float[] w = new float[params];
        for (int i = 0; i < 2 * hidden; i++) w[w1 + i] = (float) (random.nextGaussian() * Math.sqrt(2.0 / 2));
        for (int i = 0; i < hidden * CLASSES; i++) w[w2 + i] = (float) (random.nextGaussian() * Math.sqrt(2.0 / hidden));
        return w;
    }

    /** Mean cross-entropy over the data set; {@code grad} receives its gradient. */
    double lossAndGradient(float[] w, double[][] x, int[] labels, float[] grad) {
        int n = x.length;
        double[] g = new double[params];
        double total = 0;
        double[] h = new double[hidden];
        double[] p = new double[CLASSES];
        double[] d = new double[CLASSES];
        for (int k = 0; k < n; k++) {
            forward(w, x[k], h, p);
            total -= Math.log(Math.max(p[labels[k]], 1e-300));
            p[labels[k]] -= 1; // dL/dlogits
            for (int c = 0; c < CLASSES; c++) {
                d[c] = p[c] / n;
                g[b2 + c] += d[c];
            }
            for (int j = 0; j < hidden; j++) {
                if (h[j] <= 0) continue; // an inactive unit: no gradient through it, none into w2's row
                int row = w2 + j * CLASSES;
                double dh = 0;
                for (int c = 0; c < CLASSES; c++) {
                    g[row + c] += h[j] * d[c];
                    dh += w[row + c] * d[c];
                }
                g[b1 + j] += dh;
                g[w1 + j] += x[k][0] * dh;
                g[w1 + hidden + j] += x[k][1] * dh;
            }
        }
        for (int i = 0; i < params; i++) grad[i] = (float) g[i];
        return total / n;
    }

    /** Hidden activations and class probabilities of one point. */
    void forward(float[] w, double[] point, double[] h, double[] probabilities) {
        for (int j = 0; j < hidden; j++) {
            double a = w[b1 + j] + point[0] * w[w1 + j] + point[1] * w[w1 + hidden + j];
            h[j] = Math.max(0, a);
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int c = 0; c < CLASSES; c++) {
            double z = w[b2 + c];
            for (int j = 0; j < hidden; j++) z += h[j] * w[w2 + j * CLASSES + c];
            probabilities[c] = z;
            max = Math.max(max, z);
        }
        double sum = 0;
        for (int c = 0; c < CLASSES; c++) sum += probabilities[c] = Math.exp(probabilities[c] - max);
        for (int c = 0; c < CLASSES; c++) probabilities[c] /= sum;
    }

    /** The share of points whose most probable class is their label. */
    double accuracy(float[] w, double[][] x, int[] labels) {
        double[] h = new double[hidden], p = new double[CLASSES];
        int right = 0;
        for (int k = 0; k < x.length; k++) {
            forward(w, x[k], h, p);
            int best = 0;
            for (int c = 1; c < CLASSES; c++) if (p[c] > p[best]) best = c;
            if (best == labels[k]) right++;
        }
        return (double) right / x.length;
    }
}
