package io.fusedopt.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.fusedopt.GpuTests;
import io.fusedopt.cuda.CudaProbe;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The JMH benchmarks that time CUDA refuse the emulator in their setup, so that no emulator figure
 * reaches a report; on a real GPU the same setups open it.
 */
@Tag("gpu")
class CudaBenchmarkRefusalTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    /** Runs the setup (and, where it succeeds, the teardown); on the emulator it must refuse. */
    private static void setUpOnCuda(Runnable setUp, Runnable tearDown) {
        if (GpuTests.onEmulator()) {
            IllegalStateException e = assertThrows(IllegalStateException.class, setUp::run);
            assertEquals(CudaProbe.EMULATOR_BENCHMARK_REFUSAL, e.getMessage());
        } else {
            setUp.run();
            tearDown.run();
        }
    }

    @Test
    void stepBenchmark() {
        StepBenchmark b = new StepBenchmark();
        b.backend = "CUDA";
        b.algorithm = "adam";
        b.tensorSet = "one";
        b.size = 4096;
        b.storage = "fp32";
        setUpOnCuda(b::setUp, b::tearDown);
    }

    @Test
    void copyBenchmark() {
        CopyBenchmark b = new CopyBenchmark();
        b.backend = "CUDA";
        b.floats = 4096;
        setUpOnCuda(b::setUp, b::tearDown);
    }

    @Test
    void graphReplayBenchmark() {
        GraphReplayBenchmark b = new GraphReplayBenchmark();
        b.backend = "CUDA";
        b.tensors = 10;
        b.mode = "graph";
        setUpOnCuda(b::setUp, b::tearDown);
    }
}
