package io.fusedopt.bench;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Muon;
import io.fusedopt.ParamGroup;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cuda.CudaProbe;
import java.util.Random;
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
 * One Muon step (exact mode, PyTorch's defaults: 5 Newton-Schulz steps) of one transformer-shaped
 * weight matrix, in milliseconds: GPT-2 small's attention projection (768 x 768) and its MLP
 * matrices (768 x 3072, and 3072 x 768, which takes the transposed path). The Newton-Schulz
 * products are nearly all of it: 5 x (2 m^2 n + m^3) multiply-adds for m = min(rows, cols),
 * n = max(rows, cols). benchmarks/torch_matrix.py times the same iteration in torch (float32).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class MuonStepBenchmark {
    @Param({"768x768", "768x3072", "3072x768"})
    public String shape;

    @Param({"CPU_FAST", "CUDA"})
    public String backend;

    private DeviceOptimizer optimizer;

    @Setup(Level.Trial)
    public void setUp() {
        if (backend.equals("CUDA")) CudaProbe.refuseBenchmarkOnEmulator();
        String[] dims = shape.split("x");
        int rows = Integer.parseInt(dims[0]), cols = Integer.parseInt(dims[1]);
        Muon muon = Muon.builder().build();
        optimizer = DeviceOptimizer.builder(muon).optBackend(Backend.valueOf(backend)).build();
        ParamGroup group = optimizer.addGroup(muon);
        TensorBuffer w = optimizer.allocate((long) rows * cols), g = optimizer.allocate((long) rows * cols);
        Random random = new Random(1);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) values[i] = (float) random.nextGaussian();
        w.copyFrom(values);
        for (int i = 0; i < values.length; i++) values[i] = (float) random.nextGaussian() * 1e-2f;
        g.copyFrom(values);
        group.add("w", w, g, rows, cols);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
    }

    @Benchmark
    public void step() {
        optimizer.step();
        optimizer.synchronize();
    }
}
