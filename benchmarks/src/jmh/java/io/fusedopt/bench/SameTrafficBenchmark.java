package io.fusedopt.bench;

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
 * The roofline of {@link StepBenchmark} on the fast CPU backend: {@link SameTrafficKernel} over the
 * same tensor set with the traffic of the same algorithm and storage, on {@code threads} threads (0:
 * every available processor, as {@code optCpuThreads}' default). Same parameters, same time unit,
 * so {@link CpuReport} pairs each step with its own roofline.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class SameTrafficBenchmark {

    @Param({"adam", "adamw", "rmsprop", "momentum", "sgd", "adagrad", "adamax", "adadelta", "asgd", "rprop", "nadam", "radam", "lion", "ademamix", "lars", "lamb", "adafactor"})
    public String algorithm;

    /** As {@link StepBenchmark#tensorSet}. */
    @Param({"one", "transformer"})
    public String tensorSet;

    @Param({"16777216"})
    public int size;

    /** As {@link StepBenchmark#storage}. */
    @Param({"fp32", "bf16-master"})
    public String storage;

    /** Threads; 0 means every available processor. */
    @Param({"0"})
    public int threads;

    private SameTrafficKernel kernel;

    @Setup(Level.Trial)
    public void setUp() {
        int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        kernel = new SameTrafficKernel(SameTrafficKernel.Traffic.of(algorithm, storage), TensorSets.named(tensorSet, size), n);
    }

    @Benchmark
    public void step() {
        kernel.run();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        kernel.close();
    }
}
