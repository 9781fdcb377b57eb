package io.fusedopt.bench;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
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
 * The host roofline of the fast CPU backend: one copy of {@code floats} float32 values between two
 * off-heap buffers, split into equal contiguous parts over {@code threads} threads (0: every
 * core), each part a bulk NIO copy. Bandwidth counts bytes read plus written, 8 per float (the
 * STREAM convention: the cache's read-for-ownership of the destination is not counted).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class HostCopyBenchmark {

    @Param({"67108864"})
    public int floats;

    /** Copying threads; 0 means every available processor. */
    @Param({"0"})
    public int threads;

    private FloatBuffer source;
    private FloatBuffer destination;
    private ExecutorService pool;
    private Future<?>[] parts;

    @Setup(Level.Trial)
    public void setUp() {
        source = ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()).asFloatBuffer();
        destination = ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int i = 0; i < floats; i++) source.put(i, i);
        int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        pool = Executors.newFixedThreadPool(n);
        parts = new Future<?>[n];
    }

    @Benchmark
    public void copy() throws Exception {
        int n = parts.length;
        for (int p = 0; p < n; p++) {
            int from = (int) ((long) floats * p / n), to = (int) ((long) floats * (p + 1) / n);
            parts[p] = pool.submit(() -> destination.put(from, source, from, to - from));
        }
        for (Future<?> part : parts) part.get();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.shutdownNow();
    }
}
