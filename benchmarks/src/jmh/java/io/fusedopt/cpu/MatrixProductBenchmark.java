package io.fusedopt.cpu;

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
 * One exact float32 product {@code n x n} times {@code n x n} as CPU_FAST's Newton-Schulz runs it
 * ({@link FastMatrixProducts}: SIMD tiles, k in the reference's order, row blocks on a team of
 * {@code threads}), in milliseconds; GFLOP/s = 2 n^3 / time. benchmarks/torch_matrix.py measures
 * {@code torch.matmul} on the same sizes and threads, side by side (docs/muon.md, "Speed").
 *
 * <p>Package io.fusedopt.cpu, to reach the package-private classes; run with
 * {@code benchmarks/run-jmh.sh MatrixProductBenchmark}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class MatrixProductBenchmark {
    @Param({"1024", "4096"})
    public int n;

    @Param({"1", "2"})
    public int threads;

    private float[] p, q, out;
    private WorkerTeam team;
    private FastMatrixProducts products;

    @Setup(Level.Trial)
    public void setUp() {
        if (!VectorSupport.available()) throw new IllegalStateException("no vectors here: " + VectorSupport.reason());
        Random random = new Random(1);
        p = new float[n * n];
        q = new float[n * n];
        out = new float[n * n];
        for (int i = 0; i < p.length; i++) {
            p[i] = (float) random.nextGaussian();
            q[i] = (float) random.nextGaussian();
        }
        team = new WorkerTeam(threads);
        products = new FastMatrixProducts(team, true);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        team.close();
    }

    @Benchmark
    public float[] product() {
        products.product(p, q, n, n, n, out);
        return out;
    }
}
