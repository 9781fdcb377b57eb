package io.fusedopt.bench;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.Sgd;
import ai.djl.util.Pair;
import io.fusedopt.djl.FusedOptimizer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * DJL's {@code trainer.step()} on its PyTorch engine (CPU) for an MLP of 10.2M float32 parameters
 * (four 1600 x 1600 linear layers and their biases), with DJL's own Adam and SGD against
 * {@link FusedOptimizer} running fusedopt's Adam and SGD (CPU_FAST, in place on DJL's tensors), in
 * milliseconds per step. Only the step is timed: the gradients of one backward pass in the setup
 * are put back into the gradient tensors before each step (untimed), since each optimizer zeroes
 * them after applying them; with zero gradients Adam's moments would decay into subnormal floats
 * within a few hundred steps, whose arithmetic is many times slower on x86.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class DjlStepBenchmark {
    /** DJL's Adam, DJL's SGD, fusedopt's Adam, fusedopt's SGD (PyTorch's defaults, lr 1e-3). */
    @Param({"djl-adam", "djl-sgd", "fusedopt-adam", "fusedopt-sgd"})
    public String optimizer;

    static final int WIDTH = 1600, LAYERS = 4, BATCH = 32;

    private Model model;
    private Trainer trainer;
    private FusedOptimizer fused;
    private List<Parameter> parameters;
    private List<float[]> gradients;

    @Setup(Level.Trial)
    public void setUp() {
        SequentialBlock block = new SequentialBlock();
        for (int i = 0; i < LAYERS; i++) block.add(Linear.builder().setUnits(WIDTH).build()).add(Activation::relu);
        model = Model.newInstance("mlp", Device.cpu(), "PyTorch");
        model.setBlock(block);
        Optimizer chosen = switch (optimizer) {
            case "djl-adam" -> Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build();
            case "djl-sgd" -> Optimizer.sgd().setLearningRateTracker(Tracker.fixed(1e-3f)).build();
            case "fusedopt-adam" -> fused = FusedOptimizer.builder(block, Adam.builder().optLearningRate(1e-3).build())
                    .optBackend(Backend.CPU_FAST).build();
            case "fusedopt-sgd" -> fused = FusedOptimizer.builder(block, Sgd.builder().optLearningRate(1e-3).build())
                    .optBackend(Backend.CPU_FAST).build();
            default -> throw new IllegalArgumentException(optimizer);
        };
        DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(chosen);
        trainer = model.newTrainer(config);
        trainer.initialize(new Shape(BATCH, WIDTH));
        NDArray x = trainer.getManager().randomNormal(new Shape(BATCH, WIDTH));
        NDArray y = trainer.getManager().randomNormal(new Shape(BATCH, WIDTH));
        try (GradientCollector collector = trainer.newGradientCollector()) {
            collector.backward(config.getLossFunction().evaluate(new NDList(y), trainer.forward(new NDList(x))));
        }
        parameters = new ArrayList<>();
        gradients = new ArrayList<>();
        for (Pair<String, Parameter> p : block.getParameters()) {
            parameters.add(p.getValue());
            gradients.add(p.getValue().getArray().getGradient().toFloatArray());
        }
        trainer.step(); // DJL checks the gradients at its first step only
    }

    /** The setup's gradients back in place (the last step zeroed them), written through the tensors' own memory. */
    @Setup(Level.Invocation)
    public void restoreGradients() {
        for (int i = 0; i < parameters.size(); i++) {
            parameters.get(i).getArray().getGradient().toByteBuffer(true).order(ByteOrder.nativeOrder()).asFloatBuffer().put(gradients.get(i));
        }
    }

    @Benchmark
    public void step() {
        trainer.step();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        trainer.close();
        if (fused != null) fused.close();
        model.close();
    }
}
