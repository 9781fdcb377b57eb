package io.fusedopt.bench;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
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
 * Time of one optimizer step over one tensor, per backend. On CUDA each invocation queues the step
 * and waits for it, so the time is the device time plus one launch and one synchronization.
 * Bytes moved per parameter (the floor of a memory-bound update): SGD 12, Momentum and RMSProp 20,
 * Adam/AdamW 28. Divide by the time for bandwidth; the roofline and JSON output come with the
 * single-launch work.
 *
 * <pre>
 * mvn -B -q test-compile exec:java -Dexec.classpathScope=test -Dexec.mainClass=org.openjdk.jmh.Main \
 *     -Dexec.args="StepBenchmark -p backend=CPU -p size=1048576"
 * </pre>
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

    @Param({"1048576", "16777216"})
    public int size;

    private DeviceOptimizer optimizer;

    @Setup(Level.Trial)
    public void setUp() {
        optimizer = DeviceOptimizer.create(Backend.valueOf(backend), config(algorithm));
        TensorBuffer p = optimizer.allocate(size);
        TensorBuffer g = optimizer.allocate(size);
        Random random = new Random(1);
        float[] values = new float[size];
        for (int i = 0; i < size; i++) values[i] = (float) random.nextGaussian();
        p.copyFrom(values);
        for (int i = 0; i < size; i++) values[i] = (float) random.nextGaussian() * 1e-2f;
        g.copyFrom(values);
        optimizer.addGroup().add("p", p, g);
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
