package io.fusedopt.bench;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.ParamGroup;
import io.fusedopt.TensorBuffer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
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
 * The per-tensor overhead of the CPU backends: AdamW over {@code tensors} tensors of four elements
 * each (so the arithmetic is negligible and what is measured is the walk over the tensors). The
 * score is microseconds per call; divided by {@code tensors} it is the cost per tensor, which
 * should not grow with their number ({@code docs/benchmarks.md} keeps the measured table).
 * <ul>
 *   <li>{@code step}: one steady-state step;
 *   <li>{@code firstStep} (single shot, the optimizer built untimed before each iteration): the
 *       first step of a fresh optimizer, where the backend lays the tensors out (in the first
 *       iteration also before the JIT has compiled the per-tensor path);
 *   <li>{@code save} and {@code load}: a checkpoint of the whole set to and from a file.
 * </ul>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class ManyTensorsBenchmark {
    static final int ELEMENTS_PER_TENSOR = 4;

    @Param({"CPU", "CPU_FAST"})
    public String backend;

    @Param({"1000", "10000", "100000"})
    public int tensors;

    private DeviceOptimizer optimizer;
    private Path checkpoint;

    /** An AdamW optimizer over {@code tensors} four-element tensors with constant non-zero gradients. */
    static DeviceOptimizer model(Backend backend, int tensors) {
        DeviceOptimizer optimizer = DeviceOptimizer.builder(Adam.adamW().build()).optBackend(backend).build();
        ParamGroup group = optimizer.addGroup();
        float[] values = new float[ELEMENTS_PER_TENSOR];
        Arrays.fill(values, 1e-3f);
        for (int t = 0; t < tensors; t++) {
            TensorBuffer p = optimizer.allocate(ELEMENTS_PER_TENSOR);
            TensorBuffer g = optimizer.allocate(ELEMENTS_PER_TENSOR);
            g.copyFrom(values);
            group.add("layer" + t + ".weight", p, g);
        }
        return optimizer;
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        optimizer = model(Backend.valueOf(backend), tensors);
        optimizer.step();
        checkpoint = Files.createTempFile("fusedopt-many-tensors", ".safetensors");
        optimizer.save(checkpoint);
    }

    @Benchmark
    public void step() {
        optimizer.step();
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @Warmup(iterations = 0)
    @Measurement(iterations = 3)
    public void firstStep(FreshModel fresh) {
        fresh.optimizer.step();
    }

    /** A newly built optimizer for each single-shot iteration, so that its building is not timed. */
    @State(Scope.Thread)
    public static class FreshModel {
        DeviceOptimizer optimizer;

        @Setup(Level.Iteration)
        public void build(ManyTensorsBenchmark benchmark) {
            optimizer = model(Backend.valueOf(benchmark.backend), benchmark.tensors);
        }

        @TearDown(Level.Iteration)
        public void close() {
            optimizer.close();
        }
    }

    @Benchmark
    public void save() throws IOException {
        optimizer.save(checkpoint);
    }

    @Benchmark
    public void load() throws IOException {
        optimizer.load(checkpoint);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        optimizer.close();
        Files.deleteIfExists(checkpoint);
    }
}
