package io.fusedopt.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.util.Pair;
import io.fusedopt.Adagrad;
import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.RmsProp;
import io.fusedopt.TensorBuffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DJL's PyTorch engine on the CPU (libtorch from Maven, no download) trains a small MLP through
 * {@link FusedOptimizer}: bit for bit the steps fusedopt takes directly on the same gradients, with
 * RMSProp, Adagrad and Nesterov momentum (which DJL's PyTorch engine lacks) lowering the loss,
 * parameter groups by name, a resumed run continuing exactly, the memory DJL hands out aliasing its
 * tensors, and refusals that change nothing.
 */
class FusedOptimizerTest {
    private static final int BATCH = 16, INPUTS = 8, HIDDEN = 12;

    private static Block mlp() {
        return new SequentialBlock().add(Linear.builder().setUnits(HIDDEN).build()).add(Activation::tanh)
                .add(Linear.builder().setUnits(1).build());
    }

    /** Generated regression data: x random, y a fixed function of x. */
    private static NDList[] batch(NDManager manager, int step) {
        Random random = new Random(1000 + step);
        float[] x = new float[BATCH * INPUTS];
        float[] y = new float[BATCH];
        for (int i = 0; i < BATCH; i++) {
            float sum = 0;
            for (int j = 0; j < INPUTS; j++) {
                x[i * INPUTS + j] = (float) random.nextGaussian();
                sum += (j % 2 == 0 ? 0.5f : -0.25f) * x[i * INPUTS + j];
            }
            y[i] = (float) Math.sin(sum);
        }
        return new NDList[] {new NDList(manager.create(x, new Shape(BATCH, INPUTS))), new NDList(manager.create(y, new Shape(BATCH, 1)))};
    }

    /** A training run through DJL: the losses, each step's gradients by parameter name, and the weights before and after. */
    private record Run(List<Float> losses, List<Map<String, float[]>> gradients, Map<String, float[]> initial, Map<String, float[]> last) {}

    /**
     * {@code steps} DJL steps of the MLP with {@code optimizer} built for the block; {@code atStart}
     * runs before the trainer is made (fresh parameters are then initialized, the same in every
     * run), {@code afterInit} after, {@code atEnd} before the trainer closes.
     */
    private static Run train(java.util.function.Function<Block, FusedOptimizer> optimizer, int firstStep, int steps,
                             Consumer<Model> atStart, Consumer<FusedOptimizer> afterInit, java.util.function.BiConsumer<Model, FusedOptimizer> atEnd) {
        Block block = mlp();
        try (Model model = Model.newInstance("mlp", Device.cpu(), "PyTorch")) {
            model.setBlock(block);
            atStart.accept(model); // a resumed run loads DJL's model file here, before the trainer
            boolean fresh = block.getParameters().values().stream().noneMatch(Parameter::isInitialized);
            FusedOptimizer fused = optimizer.apply(block);
            DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(fused);
            try (Trainer trainer = model.newTrainer(config); fused) {
                trainer.initialize(new Shape(BATCH, INPUTS));
                if (fresh) initialize(block);
                afterInit.accept(fused);
                Map<String, float[]> initial = weights(block);
                List<Float> losses = new ArrayList<>();
                List<Map<String, float[]>> gradients = new ArrayList<>();
                for (int s = firstStep; s < firstStep + steps; s++) {
                    NDList[] data = batch(trainer.getManager(), s);
                    try (GradientCollector collector = trainer.newGradientCollector()) {
                        NDArray loss = config.getLossFunction().evaluate(data[1], trainer.forward(data[0]));
                        losses.add(loss.getFloat());
                        collector.backward(loss);
                    }
                    Map<String, float[]> g = new LinkedHashMap<>();
                    for (Pair<String, Parameter> p : block.getParameters()) g.put(p.getKey(), p.getValue().getArray().getGradient().toFloatArray());
                    gradients.add(g);
                    trainer.step();
                }
                atEnd.accept(model, fused);
                return new Run(losses, gradients, initial, weights(block));
            }
        }
    }

    /** The same initial weights in every run: Gaussian, 0.3 standard deviation, from each parameter's name. */
    private static void initialize(Block block) {
        for (Pair<String, Parameter> p : block.getParameters()) {
            NDArray array = p.getValue().getArray();
            Random random = new Random(p.getKey().hashCode());
            float[] values = new float[(int) array.size()];
            for (int i = 0; i < values.length; i++) values[i] = (float) (0.3 * random.nextGaussian());
            array.set(values);
        }
    }

    /** DJL's own Adam on the PyTorch engine zeroes the gradient it applied: the adapter does the same. */
    @Test
    void djlsOwnOptimizerZeroesTheGradientItApplied() {
        Block block = mlp();
        try (Model model = Model.newInstance("mlp", Device.cpu(), "PyTorch")) {
            model.setBlock(block);
            DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(ai.djl.training.optimizer.Optimizer.adam()
                    .build());
            try (Trainer trainer = model.newTrainer(config)) {
                trainer.initialize(new Shape(BATCH, INPUTS));
                NDList[] data = batch(trainer.getManager(), 0);
                try (GradientCollector collector = trainer.newGradientCollector()) {
                    collector.backward(config.getLossFunction().evaluate(data[1], trainer.forward(data[0])));
                }
                NDArray grad = block.getParameters().get(0).getValue().getArray().getGradient();
                assertTrue(grad.abs().sum().getFloat() > 0, "backward gave a gradient");
                trainer.step();
                assertEquals(0f, grad.abs().sum().getFloat(), "DJL's Adam zeroed the gradient");
            }
        }
    }

    private static Run train(java.util.function.Function<Block, FusedOptimizer> optimizer, int steps) {
        return train(optimizer, 0, steps, m -> {}, f -> {}, (m, f) -> {});
    }

    private static Map<String, float[]> weights(Block block) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Pair<String, Parameter> p : block.getParameters()) out.put(p.getKey(), p.getValue().getArray().toFloatArray());
        return out;
    }

    /**
     * The same steps by fusedopt directly: the initial weights, the recorded gradients, each named
     * parameter in the group of {@code groupConfig} when {@code names} accepts it, else of
     * {@code defaults}, the groups added in order of first use as the adapter adds them.
     */
    private static Map<String, float[]> direct(Run run, OptimizerConfig defaults, java.util.function.Predicate<String> names,
                                               OptimizerConfig groupConfig, double maxGradNorm) {
        DeviceOptimizer.Builder builder = DeviceOptimizer.builder(defaults).optBackend(Backend.CPU);
        if (maxGradNorm > 0) builder.optMaxGradNorm(maxGradNorm);
        try (DeviceOptimizer opt = builder.build()) {
            Map<Boolean, ParamGroup> groups = new LinkedHashMap<>();
            Map<String, TensorBuffer> params = new LinkedHashMap<>(), grads = new LinkedHashMap<>();
            for (Map.Entry<String, float[]> e : run.initial().entrySet()) {
                boolean inGroup = names != null && names.test(e.getKey());
                ParamGroup group = groups.computeIfAbsent(inGroup, g -> opt.addGroup(g ? groupConfig : defaults));
                TensorBuffer p = opt.allocate(e.getValue().length), g = opt.allocate(e.getValue().length);
                p.copyFrom(e.getValue());
                group.add(e.getKey(), p, g);
                params.put(e.getKey(), p);
                grads.put(e.getKey(), g);
            }
            for (Map<String, float[]> step : run.gradients()) {
                step.forEach((name, g) -> grads.get(name).copyFrom(g));
                opt.step();
            }
            Map<String, float[]> out = new LinkedHashMap<>();
            params.forEach((name, p) -> out.put(name, p.toArray()));
            return out;
        }
    }

    private static void assertSameWeights(Map<String, float[]> expected, Map<String, float[]> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (Map.Entry<String, float[]> e : expected.entrySet()) {
            float[] a = actual.get(e.getKey());
            for (int i = 0; i < a.length; i++) {
                assertEquals(Float.floatToRawIntBits(e.getValue()[i]), Float.floatToRawIntBits(a[i]), e.getKey() + "[" + i + "]");
            }
        }
    }

    /** AdamW with a group without weight decay for the biases, clipped by the global norm: DJL's steps are fusedopt's. */
    @Test
    void trainingThroughDjlEqualsFusedoptOnTheSameGradients() {
        Adam adamW = Adam.adamW().optLearningRate(1e-2).optWeightDecay(0.1).build();
        Adam noDecay = Adam.adamW().optLearningRate(1e-2).optWeightDecay(0).build();
        java.util.function.Predicate<String> biases = name -> name.endsWith("bias");
        Run run = train(block -> FusedOptimizer.builder(block, adamW).optGroup(biases, noDecay).optBackend(Backend.CPU_FAST)
                .optOptions(b -> b.optMaxGradNorm(0.5)).build(), 6);
        assertEquals(6, run.gradients().size());
        assertSameWeights(direct(run, adamW, biases, noDecay, 0.5), run.last());
    }

    /** RMSProp, Adagrad and Nesterov momentum, which DJL's PyTorch engine does not implement, train through the adapter. */
    @Test
    void algorithmsDjlsPyTorchEngineLacksTrain() {
        for (OptimizerConfig config : List.of(RmsProp.builder().optLearningRate(1e-2).build(), Adagrad.builder().optLearningRate(0.1).build(),
                Momentum.builder().setMomentum(0.9).optLearningRate(0.01).optNesterov(true).build())) {
            Run run = train(block -> FusedOptimizer.builder(block, config).optBackend(Backend.CPU).build(), 30);
            assertSameWeights(direct(run, config, null, null, 0), run.last());
            float first = (run.losses().get(0) + run.losses().get(1) + run.losses().get(2)) / 3;
            float last = (run.losses().get(27) + run.losses().get(28) + run.losses().get(29)) / 3;
            assertTrue(last < 0.7f * first, config + ": the loss went from " + first + " to " + last);
        }
    }

    /**
     * A step leaves no DJL array behind: each gradient DJL hands out is a new array of the
     * parameters' manager until it is closed, and after the first step (which registers the
     * parameters) a {@code trainer.step()} through the adapter adds none there (it added 4 a step,
     * one per parameter, before the adapter closed them).
     */
    @Test
    void stepsLeaveNoArraysBehind() {
        withAdapterTrainer(Adam.builder().optLearningRate(1e-2).build(), (model, block, fused, trainer) -> {
            NDManager parameters = block.getParameters().get(0).getValue().getArray().getManager();
            int[] added = new int[8];
            for (int s = 0; s < added.length; s++) {
                computeGradients(trainer, s);
                int before = parameters.getManagedArrays().size();
                trainer.step();
                added[s] = parameters.getManagedArrays().size() - before;
            }
            for (int s = 1; s < added.length; s++) {
                assertEquals(0, added[s], "arrays each step added: " + java.util.Arrays.toString(added));
            }
        });
    }

    /** What a test does with an initialized DJL trainer of the MLP whose optimizer is fusedopt's adapter. */
    private interface AdapterSession {
        void run(Model model, Block block, FusedOptimizer fused, Trainer trainer);
    }

    /** A new MLP, the adapter over {@code adam} on the CPU backend, and an initialized trainer, closed after {@code session}. */
    private static void withAdapterTrainer(Adam adam, AdapterSession session) {
        Block block = mlp();
        try (Model model = Model.newInstance("mlp", Device.cpu(), "PyTorch")) {
            model.setBlock(block);
            FusedOptimizer fused = FusedOptimizer.builder(block, adam).optBackend(Backend.CPU).build();
            DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss()).optOptimizer(fused);
            try (Trainer trainer = model.newTrainer(config); fused) {
                trainer.initialize(new Shape(BATCH, INPUTS));
                session.run(model, block, fused, trainer);
            }
        }
    }

    /** The forward and backward pass of batch {@code s}: the parameters' gradients, ready for {@code trainer.step()}. */
    private static void computeGradients(Trainer trainer, int s) {
        NDList[] data = batch(trainer.getManager(), s);
        try (GradientCollector collector = trainer.newGradientCollector()) {
            collector.backward(trainer.getLoss().evaluate(data[1], trainer.forward(data[0])));
        }
    }

    /** The memory DJL hands out for a CPU float32 tensor is the tensor's: a write through it is a write to the tensor. */
    @Test
    void theBufferDjlHandsOutAliasesTheTensor() {
        try (NDManager manager = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
            NDArray array = manager.create(new float[] {1, 2, 3});
            ByteBuffer memory = array.toByteBuffer(true);
            assertTrue(memory.isDirect());
            memory.order(ByteOrder.nativeOrder()).asFloatBuffer().put(1, 42f);
            assertArrayEquals(new float[] {1, 42, 3}, array.toFloatArray());
        }
    }

    /**
     * Saved after 4 steps (DJL's model file and fusedopt's state), resumed in a new model loaded
     * from them: 4 more steps end bit for bit where fusedopt's 8 uninterrupted steps on the same
     * gradients (those DJL computed before and after the save) end. Not against 8 uninterrupted
     * DJL steps: libtorch need not compute the same gradient bits in two runs of the same model
     * (its CPU products can depend on where their inputs lie in memory), and RMSProp's first
     * steps move a weight by about lr / sqrt(1 - alpha) whatever its gradient's size, so a
     * different last bit can become a different weight; such a comparison failed in CI once.
     */
    @Test
    void aSavedRunResumesExactly(@TempDir Path dir) {
        RmsProp config = RmsProp.builder().optLearningRate(1e-2).optMomentum(0.5).build();
        Path state = dir.resolve("optimizer.safetensors");
        Run saved = train(block -> FusedOptimizer.builder(block, config).optBackend(Backend.CPU).build(), 0, 4, m -> {}, f -> {}, (model, f) -> {
            try {
                model.save(dir, "mlp");
                f.save(state);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        Run resumed = train(block -> FusedOptimizer.builder(block, config).optBackend(Backend.CPU).build(), 4, 4, model -> {
            try {
                model.load(dir, "mlp");
            } catch (java.io.IOException | ai.djl.MalformedModelException e) {
                throw new IllegalStateException(e);
            }
        }, f -> {
            try {
                f.load(state);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }, (m, f) -> {});
        assertSameWeights(saved.last(), resumed.initial()); // DJL's model file holds the weights exactly
        List<Map<String, float[]>> gradients = new ArrayList<>(saved.gradients());
        gradients.addAll(resumed.gradients());
        Run uninterrupted = new Run(List.of(), gradients, saved.initial(), null);
        assertSameWeights(direct(uninterrupted, config, null, null, 0), resumed.last());
    }

    /**
     * DJL's model file loaded into a model in training gives its parameters new arrays: the next
     * step is refused, naming the parameter, and nothing is updated.
     */
    @Test
    void parametersGivenNewArraysAreRefused(@TempDir Path dir) {
        Adam adam = Adam.builder().optLearningRate(1e-2).build();
        train(block -> FusedOptimizer.builder(block, adam).optBackend(Backend.CPU).build(), 0, 1, m -> {}, f -> {}, (model, f) -> {
            try {
                model.save(dir, "mlp");
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        assertSecondStepRefused(adam, (model, block) -> {
            try {
                model.load(dir, "mlp"); // new arrays for every parameter
            } catch (java.io.IOException | ai.djl.MalformedModelException e) {
                throw new IllegalStateException(e);
            }
        }, "lies in other memory than at the first step");
    }

    /**
     * One DJL step through the adapter, then {@code change}, then a second step: refused with a
     * message containing {@code expected}, the weights and fusedopt's step count unchanged.
     */
    private static void assertSecondStepRefused(Adam adam, java.util.function.BiConsumer<Model, Block> change, String expected) {
        withAdapterTrainer(adam, (model, block, fused, trainer) -> {
            computeGradients(trainer, 0);
            trainer.step();
            change.accept(model, block);
            computeGradients(trainer, 1);
            Map<String, float[]> before = weights(block);
            IllegalStateException refused = assertThrows(IllegalStateException.class, trainer::step);
            assertTrue(refused.getMessage().contains(expected), refused.getMessage());
            assertSameWeights(before, weights(block));
            assertEquals(1, fused.fusedOptimizer().stepCount(), "the refused step took no fusedopt step");
        });
    }

    /** A float64 block, a parameter frozen after a step, DJL's own options: refused, naming them, nothing changed. */
    @Test
    void badInputIsRefused() {
        Adam adam = Adam.builder().build();
        IllegalArgumentException djlOptions = assertThrows(IllegalArgumentException.class,
                () -> FusedOptimizer.builder(mlp(), adam).optClipGrad(1f).build());
        assertTrue(djlOptions.getMessage().contains("DJL's rescaleGrad, clipGrad and weightDecays are not fusedopt's"), djlOptions.getMessage());
        try (NDManager manager = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
            Block doubles = mlp();
            doubles.initialize(manager, DataType.FLOAT64, new Shape(BATCH, INPUTS));
            Parameter first = doubles.getParameters().get(0).getValue();
            try (FusedOptimizer fused = FusedOptimizer.builder(doubles, adam).optBackend(Backend.CPU).build()) {
                IllegalArgumentException float64 = assertThrows(IllegalArgumentException.class,
                        () -> fused.update(first.getId(), first.getArray(), first.getArray()));
                assertTrue(float64.getMessage().contains("is float64: fusedopt updates float32 parameters"), float64.getMessage());
                assertEquals(0, fused.fusedOptimizer().groups().stream().mapToInt(g -> g.parameters().size()).sum(), "nothing registered");
            }
        }
        // A parameter frozen after a step: DJL stops updating it, the adapter refuses before updating anything.
        assertSecondStepRefused(adam, (model, block) -> block.getParameters().get(0).getValue().freeze(true),
                "no longer requires a gradient (frozen)");
    }
}
