package io.fusedopt.cli;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.Precision;
import io.fusedopt.StateQuantization;
import io.fusedopt.TensorBuffer;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The memory savers on a real task: the spiral classifier, {@link #NETWORK} (wide enough that its
 * one tensor of weights gets 8-bit states), trained with AdamW at a small learning rate in several
 * storage setups: float32 weights and states; float32 weights with 8-bit blockwise states; bf16
 * weights with fp32 master weights; bf16 weights rounded to nearest after every step, without
 * masters (updates below half a bf16 ulp are lost); bf16 weights rounded stochastically, without
 * masters. The gradients are float32 in all.
 */
final class MemorySaversDemo {
    private MemorySaversDemo() {}

    /** Small enough that most updates are below half a bf16 ulp of the weights (2^-9 at 1). */
    static final double LEARNING_RATE = 1e-3;

    /** 2-700-3: 4203 weights, past the 4096 elements from which states are 8-bit (16 full blocks and a partial one). */
    static final SpiralNetwork NETWORK = new SpiralNetwork(700);

    /** A storage setup: the weights' format, fp32 master weights or not, stochastic rounding or not, 8-bit states or not. */
    record Setup(Precision weights, boolean master, boolean stochastic, boolean eightBitStates) {
        DeviceOptimizer open(Backend backend, OptimizerConfig config) {
            DeviceOptimizer.Builder b = DeviceOptimizer.builder(config).optBackend(backend)
                    .optStateQuantization(eightBitStates ? StateQuantization.BLOCKWISE_8BIT : StateQuantization.NONE);
            return (stochastic ? b.optStochasticRounding(2024) : b.optMasterWeights(master)).build();
        }
    }

    /** The setups, by the label the chart and the report show. */
    static Map<String, Setup> setups() {
        Map<String, Setup> s = new LinkedHashMap<>();
        s.put("fp32 weights", new Setup(Precision.FP32, false, false, false));
        s.put("fp32 weights, 8-bit states", new Setup(Precision.FP32, false, false, true));
        s.put("bf16 weights, fp32 master", new Setup(Precision.BF16, true, false, false));
        s.put("bf16 weights rounded to nearest", new Setup(Precision.BF16, false, false, false));
        s.put("bf16 weights rounded stochastically", new Setup(Precision.BF16, false, true, false));
        return s;
    }

    static Map<String, SpiralDemo.Training> train(Backend backend, int steps) {
        int[] labels = new int[SpiralNetwork.CLASSES * SpiralNetwork.PER_CLASS];
        double[][] x = SpiralNetwork.points(labels);
        OptimizerConfig adamW = Adam.adamW().optLearningRate(LEARNING_RATE).build();
        Map<String, SpiralDemo.Training> out = new LinkedHashMap<>();
        for (Map.Entry<String, Setup> e : setups().entrySet()) {
            double[] loss = new double[steps];
            double accuracy;
            try (DeviceOptimizer opt = e.getValue().open(backend, adamW)) {
                TensorBuffer weights = opt.allocate(NETWORK.params, e.getValue().weights());
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
            out.put(e.getKey(), new SpiralDemo.Training(loss, accuracy));
        }
        return out;
    }
}
