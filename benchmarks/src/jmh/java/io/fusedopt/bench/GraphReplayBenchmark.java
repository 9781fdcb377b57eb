package io.fusedopt.bench;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.NonFinitePolicy;
import io.fusedopt.ParamGroup;
import io.fusedopt.StepGraph;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cuda.CudaProbe;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The launch-bound case: an Adam step over {@code tensors} tiny tensors (1 to 64 elements), with the
 * non-finite check on (so the whole pipeline runs: statistics, finalize, update), taken
 * {@value #STEPS_PER_INVOCATION} times per invocation and then synchronized, so the score is the
 * time of one step in steady state: "graph" replays a captured step, "step" calls step().
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class GraphReplayBenchmark {
    static final int STEPS_PER_INVOCATION = 100;

    @Param({"CPU", "CPU_FAST", "CUDA"})
    public String backend;

    @Param({"1000"})
    public int tensors;

    @Param({"graph", "step"})
    public String mode;

    private DeviceOptimizer optimizer;
    private StepGraph graph;

    @Setup(Level.Trial)
    public void setUp() {
        if (backend.equals("CUDA")) CudaProbe.refuseBenchmarkOnEmulator();
        optimizer = DeviceOptimizer.builder(Adam.builder().build()).optBackend(Backend.valueOf(backend))
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
        ParamGroup group = optimizer.addGroup();
        for (int t = 0; t < tensors; t++) {
            int n = 1 + t % 64;
            TensorBuffer p = optimizer.allocate(n);
            TensorBuffer g = optimizer.allocate(n);
            float[] values = new float[n];
            java.util.Arrays.fill(values, 1e-3f);
            g.copyFrom(values);
            group.add("t" + t, p, g);
        }
        if (mode.equals("graph")) graph = optimizer.captureStep();
    }

    /** Total elements of the set (for bytes per step). */
    static long elements(int tensors) {
        long total = 0;
        for (int t = 0; t < tensors; t++) total += 1 + t % 64;
        return total;
    }

    @Benchmark
    @OperationsPerInvocation(STEPS_PER_INVOCATION)
    public void step() {
        for (int i = 0; i < STEPS_PER_INVOCATION; i++) {
            if (graph != null) graph.replay();
            else optimizer.step();
        }
        optimizer.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
    }
}
