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
 * A small classifier trained with each optimizer: {@link SpiralNetwork}, 2-32-3, on the three
 * spirals. Every optimizer starts from the same weights; the loss curve and the final training
 * accuracy are recorded.
 */
final class SpiralDemo {
    private SpiralDemo() {}

    static final SpiralNetwork NETWORK = new SpiralNetwork(32);

    record Training(double[] loss, double accuracy) {}

    /** The optimizers and their learning rates, in drawing order: each algorithm's own ({@code Algorithm.demoConfigs}). */
    static Map<String, OptimizerConfig> optimizers() {
        return Algorithms.demoConfigs(Algorithm.DemoProblem.SPIRALS);
    }

    static Map<String, Training> train(Backend backend, int steps) {
        int[] labels = new int[SpiralNetwork.CLASSES * SpiralNetwork.PER_CLASS];
        double[][] x = SpiralNetwork.points(labels);
        Map<String, Training> out = new LinkedHashMap<>();
        for (Map.Entry<String, OptimizerConfig> e : optimizers().entrySet()) {
            double[] loss = new double[steps];
            double accuracy;
            try (DeviceOptimizer opt = DeviceOptimizer.create(backend, e.getValue())) {
                TensorBuffer weights = opt.allocate(NETWORK.params);
                TensorBuffer grads = opt.allocate(NETWORK.params);
                weights.copyFrom(NETWORK.initialWeights());
                opt.addGroup().add("mlp", weights, grads);
                float[] g = new float[NETWORK.params];
                for (int t = 0; t < steps; t++) {
                    loss[t] = NETWORK.lossAndGradient(weights.toArray(), x, labels, g);
                    grads.copyFrom(g);
                    opt.step();
                }
                accuracy = NETWORK.accuracy(weights.toArray(), x, labels);
            }
            out.put(e.getKey(), new Training(loss, accuracy));
        }
        return out;
    }
}
