package io.fusedopt.example;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import io.fusedopt.RmsProp;
import io.fusedopt.djl.FusedOptimizer;

/**
 * A DJL training loop as a DJL user has it, with one changed line: the optimizer is fusedopt's
 * RMSProp (which DJL's PyTorch engine does not implement), through {@link FusedOptimizer}. Needs
 * DJL's PyTorch engine on the classpath (ai.djl.pytorch:pytorch-engine, pytorch-jni and
 * pytorch-native-cpu, as this project's tests have them):
 * {@code java -cp "target/classes:target/test-classes:$(cat target/jmh-classpath.txt)" io.fusedopt.example.DjlTrainingExample}
 * after {@code benchmarks/run-jmh.sh -l} wrote the classpath.
 */
public final class DjlTrainingExample {
    private DjlTrainingExample() {}

    public static void main(String[] args) {
        float[] losses = train(200);
        System.out.printf("loss: first step %.4f, last step %.4f%n", losses[0], losses[losses.length - 1]);
    }

    /** Trains an MLP to fit y = sin(x . w) for {@code steps} steps; the loss of each step. */
    public static float[] train(int steps) {
        Block block = new SequentialBlock().add(Linear.builder().setUnits(32).build()).add(Activation::tanh)
                .add(Linear.builder().setUnits(1).build());
        try (Model model = Model.newInstance("mlp", "PyTorch")) {
            model.setBlock(block);
            FusedOptimizer rmsProp = FusedOptimizer.builder(block, RmsProp.builder().optLearningRate(1e-2).build()).build();
            DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(rmsProp); // was Optimizer.adam()...
            try (Trainer trainer = model.newTrainer(config); rmsProp) {
                trainer.initialize(new Shape(64, 8));
                NDManager manager = trainer.getManager();
                NDArray w = manager.randomNormal(new Shape(8, 1));
                float[] losses = new float[steps];
                for (int step = 0; step < steps; step++) {
                    NDArray x = manager.randomNormal(new Shape(64, 8));
                    NDArray y = x.matMul(w).sin();
                    try (GradientCollector collector = trainer.newGradientCollector()) {
                        NDArray loss = config.getLossFunction().evaluate(new NDList(y), trainer.forward(new NDList(x)));
                        losses[step] = loss.getFloat();
                        collector.backward(loss);
                    }
                    trainer.step();
                }
                return losses;
            }
        }
    }
}
