package io.fusedopt;

import static io.fusedopt.ValidationTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The CUDA backend's own contract: wrapped caller memory, pointer checks, lifetime. */
@Tag("gpu")
class CudaBackendTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    /** Memory the test owns, allocated with JCuda as another library would. */
    private static final class CallerAllocation extends CUdeviceptr implements AutoCloseable {
        CallerAllocation(long bytes) {
            assertEquals(0, JCudaDriver.cuMemAlloc(this, bytes));
        }

        long address() {
            return getNativePointer() + getByteOffset();
        }

        @Override
        public void close() {
            assertEquals(0, JCudaDriver.cuMemFree(this));
        }
    }

    @Test
    void wrappedCallerMemoryIsUpdatedInPlaceAndNeverFreed() {
        float[] weights = {1f, 2f, 3f, 4f, 5f};
        float[] grads = {0.5f, -1f, 2f, 0f, 1e-3f};
        float[] expected = Trajectory.cpu(Sgd.builder().optLearningRate(0.1).build(), weights, java.util.List.of(grads));
        CallerAllocation memory;
        DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Sgd.builder().optLearningRate(0.1).build());
        memory = new CallerAllocation(weights.length * 4L);
        TensorBuffer p = opt.wrapDevicePointer(memory.address(), weights.length);
        assertFalse(p.isOwnedByLibrary());
        p.copyFrom(weights);
        TensorBuffer g = opt.allocate(weights.length);
        g.copyFrom(grads);
        opt.addGroup().add("w", p, g);
        opt.step();
        assertArrayEquals(expected, p.toArray());
        opt.close();
        // The optimizer is gone; the caller's memory is intact and still the caller's to free.
        float[] after = new float[weights.length];
        assertEquals(0, JCudaDriver.cuMemcpyDtoH(Pointer.to(after), memory, weights.length * 4L));
        assertArrayEquals(expected, after);
        memory.close();
    }

    @Test
    void badDevicePointersAreRefused() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Sgd.builder().build());
             CallerAllocation memory = new CallerAllocation(64)) {
            assertMessage(IllegalArgumentException.class, "null", () -> opt.wrapDevicePointer(0, 4));
            assertMessage(IllegalArgumentException.class, "aligned", () -> opt.wrapDevicePointer(memory.address() + 2, 4));
            assertMessage(IllegalArgumentException.class, "past the end", () -> opt.wrapDevicePointer(memory.address(), 17));
            assertMessage(IllegalArgumentException.class, "past the end", () -> opt.wrapDevicePointer(memory.address() + 8, 15));
            assertMessage(IllegalArgumentException.class, "not device memory", () -> opt.wrapDevicePointer(0x1000, 4));
            assertEquals(16, opt.wrapDevicePointer(memory.address(), 16).length());
            assertMessage(UnsupportedOperationException.class, "device memory only", () -> opt.wrapHost(new float[4]));
        }
    }

    @Test
    void closeFreesOwnedMemoryAndLaterCallsAreRefused() {
        DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Adam.builder().build());
        assertEquals(Backend.CUDA, opt.backend());
        assertTrue(opt.deviceDescription().startsWith("CUDA device 0"), opt.deviceDescription());
        TensorBuffer p = opt.allocate(1000);
        Parameter w = opt.addGroup().add("w", p, opt.allocate(1000));
        assertEquals(4 * 4000L, opt.ownedBytes());
        assertArrayEquals(new float[1000], w.state(StateKind.EXP_AVG).toArray(), "state starts at zero");
        opt.step();
        opt.synchronize();
        opt.close();
        assertMessage(IllegalStateException.class, "closed", opt::step);
        assertMessage(IllegalStateException.class, "closed", p::toArray);
    }

    @Test
    void emptyTensorsAndAdagradInitialValueOnTheDevice() {
        Adagrad config = Adagrad.builder().optInitialAccumulatorValue(0.25).build();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, config)) {
            ParamGroup group = opt.addGroup();
            group.add("empty", opt.allocate(0), opt.allocate(0));
            Parameter w = group.add("w", opt.allocate(3), opt.allocate(3));
            assertArrayEquals(new float[] {0.25f, 0.25f, 0.25f}, w.state(StateKind.SUM).toArray());
            opt.step();
            assertEquals(1, opt.stepCount());
        }
    }

    /**
     * Wrapped pointers at every misalignment: operands that share one (head, 16-byte body, tail)
     * and operands that differ (element by element) both give the reference bit for bit.
     */
    @Test
    void misalignedWrappedPointersGiveTheReferenceResult() {
        int n = 70_000; // more than one chunk
        float[] weights = CudaEquivalenceTest.gaussian(new java.util.Random(1), n, 1f);
        float[] grads = CudaEquivalenceTest.gaussian(new java.util.Random(2), n, 1f);
        for (OptimizerConfig config : new OptimizerConfig[] {Sgd.builder().optLearningRate(0.1).build(),
                Adam.adamW().optLearningRate(0.01).build()}) {
            float[] expected = Trajectory.cpu(config, weights, java.util.List.of(grads, grads));
            for (int[] offsets : new int[][] {{0, 0}, {1, 1}, {2, 2}, {3, 3}, {1, 2}, {0, 3}}) {
                try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, config);
                     CallerAllocation pm = new CallerAllocation((n + 4) * 4L);
                     CallerAllocation gm = new CallerAllocation((n + 4) * 4L)) {
                    TensorBuffer p = opt.wrapDevicePointer(pm.address() + 4L * offsets[0], n);
                    TensorBuffer g = opt.wrapDevicePointer(gm.address() + 4L * offsets[1], n);
                    p.copyFrom(weights);
                    g.copyFrom(grads);
                    opt.addGroup().add("w", p, g);
                    opt.step();
                    opt.step();
                    CudaEquivalenceTest.assertBitEqual(expected, p.toArray(),
                            config.algorithm() + " with element offsets " + offsets[0] + ", " + offsets[1]);
                }
            }
        }
    }

    /** A stream the test creates, as a framework would; its raw handle is what fusedopt takes. */
    private static final class CallerStream extends jcuda.driver.CUstream implements AutoCloseable {
        CallerStream() {
            assertEquals(0, JCudaDriver.cuStreamCreate(this, jcuda.driver.CUstream_flags.CU_STREAM_NON_BLOCKING));
        }

        long handle() {
            return getNativePointer();
        }

        @Override
        public void close() {
            assertEquals(0, JCudaDriver.cuStreamDestroy(this));
        }
    }

    @Test
    void stepsRunOnTheCallersStream() {
        float[] weights = CudaEquivalenceTest.gaussian(new java.util.Random(5), 100_003, 1f);
        float[] grads = CudaEquivalenceTest.gaussian(new java.util.Random(6), 100_003, 1f);
        Adam adam = Adam.builder().optLearningRate(0.01).build();
        float[] expected = Trajectory.cpu(adam, weights, java.util.List.of(grads, grads, grads));
        try (DeviceOptimizer probe = DeviceOptimizer.create(Backend.CUDA, adam); // makes the primary context current
             CallerStream stream = new CallerStream();
             DeviceOptimizer opt = DeviceOptimizer.builder(adam).optBackend(Backend.CUDA).optCudaStream(stream.handle()).build()) {
            TensorBuffer p = opt.allocate(weights.length);
            TensorBuffer g = opt.allocate(weights.length);
            p.copyFrom(weights);
            g.copyFrom(grads);
            opt.addGroup().add("w", p, g);
            for (int i = 0; i < 3; i++) opt.step();
            opt.synchronize();
            CudaEquivalenceTest.assertBitEqual(expected, p.toArray(), "adam on the caller's stream");
        }
    }
}
