package io.fusedopt.bench;

import io.fusedopt.cuda.CudaProbe;
import io.fusedopt.cuda.DeviceCopy;
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
 * The roofline: one copy of {@code floats} float32 values, on the host (one thread,
 * System.arraycopy, what the single-threaded reference can hope for) or on the device
 * (cuMemcpyDtoD). Bandwidth counts bytes read plus written: 8 bytes per float.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class CopyBenchmark {

    @Param({"CPU", "CUDA"})
    public String backend;

    @Param({"67108864"})
    public int floats;

    private float[] source;
    private float[] destination;
    private DeviceCopy device;

    @Setup(Level.Trial)
    public void setUp() {
        if (backend.equals("CUDA")) {
            CudaProbe.refuseBenchmarkOnEmulator();
            device = new DeviceCopy(0, 4L * floats);
        } else {
            source = new float[floats];
            destination = new float[floats];
            java.util.Arrays.fill(source, 1f);
        }
    }

    @Benchmark
    public void copy() {
        if (device != null) {
            device.copy();
            device.synchronize();
        } else {
            System.arraycopy(source, 0, destination, 0, floats);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (device != null) device.close();
    }
}
