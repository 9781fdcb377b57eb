package io.fusedopt.cpu;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.TensorBuffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
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
 * An Adam step on {@link Backend#CPU_FAST} over one tensor whose param and grad are memory of each
 * kind the backend vectorizes: its own off-heap blocks ("allocated"), or the caller's memory
 * wrapped in place ({@code wrapHost}) as a float[], a heap FloatBuffer slice or a direct FloatBuffer
 * slice (position 3, so not at the start of its memory). The state is always the backend's own
 * off-heap memory, so every wrapped case mixes two memory kinds in one update, as user code does.
 * "allocated" against the others shows whether mixing kinds costs the vector path anything.
 *
 * <p>Public API only; compiled with the tests, so {@code benchmarks/run-jmh.sh WrappedMemoryBenchmark}
 * runs it like the benchmarks under benchmarks/. The vector path over heap arrays needs a few
 * seconds more to reach C2 than over off-heap memory on JDK 25: use {@code -wi 8} or more.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class WrappedMemoryBenchmark {

    @Param({"allocated", "float[]", "heapFloatBuffer", "directFloatBuffer"})
    public String memory;

    @Param({"16777216"})
    public int size;

    private DeviceOptimizer optimizer;

    @Setup(Level.Trial)
    public void setUp() {
        optimizer = DeviceOptimizer.create(Backend.CPU_FAST, Adam.builder().build());
        Random random = new Random(1);
        float[] param = new float[size];
        float[] grad = new float[size];
        for (int i = 0; i < size; i++) param[i] = (float) random.nextGaussian();
        for (int i = 0; i < size; i++) grad[i] = (float) random.nextGaussian() * 1e-2f;
        optimizer.addGroup().add("w", tensor(param), tensor(grad));
    }

    private TensorBuffer tensor(float[] values) {
        switch (memory) {
            case "allocated": {
                TensorBuffer t = optimizer.allocate(values.length);
                t.copyFrom(values);
                return t;
            }
            case "float[]":
                return optimizer.wrapHost(values);
            case "heapFloatBuffer": {
                float[] larger = new float[values.length + 3];
                System.arraycopy(values, 0, larger, 3, values.length);
                return optimizer.wrapHost(FloatBuffer.wrap(larger).position(3).slice());
            }
            case "directFloatBuffer": {
                FloatBuffer direct = ByteBuffer.allocateDirect((values.length + 3) * Float.BYTES)
                        .order(ByteOrder.nativeOrder()).asFloatBuffer();
                direct.position(3);
                direct.put(values).position(3);
                return optimizer.wrapHost(direct);
            }
            default:
                throw new IllegalArgumentException("unknown memory kind " + memory);
        }
    }

    @Benchmark
    public void step() {
        optimizer.step();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
    }
}
