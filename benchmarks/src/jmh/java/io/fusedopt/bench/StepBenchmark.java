package io.fusedopt.bench;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.RmsProp;
import io.fusedopt.Sgd;
import io.fusedopt.TensorBuffer;
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
 * Time of one optimizer step over a tensor set, per backend. On CUDA each invocation queues the
 * step and waits for it, so the time is the device time plus one launch and one synchronization.
 * {@link BenchmarkReport} turns the times into GB/s with the bytes each kernel moves per parameter
 * (SGD 12, Momentum and RMSProp 20, Adam/AdamW 28) and the copy bandwidth of the same run.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class StepBenchmark {

    @Param({"adam", "adamw", "rmsprop", "momentum", "sgd"})
    public String algorithm;

    @Param({"CPU", "CUDA"})
    public String backend;

    /** "one": a single tensor of {@code size} elements; "transformer": {@link TensorSets#transformer()}. */
    @Param({"one", "transformer"})
    public String tensorSet;

    @Param({"16777216"})
    public int size;

    private DeviceOptimizer optimizer;

    @Setup(Level.Trial)
    public void setUp() {
        optimizer = DeviceOptimizer.create(Backend.valueOf(backend), config(algorithm));
        ParamGroup group = optimizer.addGroup();
        Random random = new Random(1);
        long[] sizes = TensorSets.named(tensorSet, size);
        for (int t = 0; t < sizes.length; t++) {
            int n = Math.toIntExact(sizes[t]);
            TensorBuffer p = optimizer.allocate(n);
            TensorBuffer g = optimizer.allocate(n);
            float[] values = new float[n];
            for (int i = 0; i < n; i++) values[i] = (float) random.nextGaussian();
            p.copyFrom(values);
            for (int i = 0; i < n; i++) values[i] = (float) random.nextGaussian() * 1e-2f;
            g.copyFrom(values);
            group.add("t" + t, p, g);
        }
    }

    static OptimizerConfig config(String algorithm) {
        return switch (algorithm) {
            case "adam" -> Adam.builder().build();
            case "adamw" -> Adam.adamW().build();
            case "rmsprop" -> RmsProp.builder().build();
            case "momentum" -> Momentum.builder().setMomentum(0.9).optNesterov(true).build();
            case "sgd" -> Sgd.builder().build();
            default -> throw new IllegalArgumentException("unknown algorithm " + algorithm);
        };
    }

    @Benchmark
    public void step() {
        optimizer.step();
        optimizer.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
    }
}
