package io.fusedopt;

import static io.fusedopt.ValidationTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CudaProbe;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.logging.Level;
import jcuda.Pointer;
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

    @Test
    void wrappedCallerMemoryIsUpdatedInPlaceAndNeverFreed() {
        float[] weights = {1f, 2f, 3f, 4f, 5f};
        float[] grads = {0.5f, -1f, 2f, 0f, 1e-3f};
        float[] expected = Trajectory.cpu(Sgd.builder().optLearningRate(0.1).build(), weights, List.of(grads));
        // The test's own retain keeps the context, and so its memory, alive after the optimizer's release.
        try (CallerContext context = new CallerContext(0); CallerContext.Allocation memory = context.allocate(weights.length * 4L)) {
            DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Sgd.builder().optLearningRate(0.1).build());
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
            context.makeCurrent();
            float[] after = new float[weights.length];
            CallerContext.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(after), memory, weights.length * 4L), "cuMemcpyDtoH");
            assertArrayEquals(expected, after);
        }
    }

    @Test
    void badDevicePointersAreRefused() {
        try (CallerContext context = new CallerContext(0); CallerContext.Allocation memory = context.allocate(64);
             DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Sgd.builder().build())) {
            assertMessage(IllegalArgumentException.class, "null", () -> opt.wrapDevicePointer(0, 4));
            assertMessage(IllegalArgumentException.class, "aligned", () -> opt.wrapDevicePointer(memory.address() + 2, 4));
            assertMessage(IllegalArgumentException.class, "past the end", () -> opt.wrapDevicePointer(memory.address(), 17));
            assertMessage(IllegalArgumentException.class, "past the end", () -> opt.wrapDevicePointer(memory.address() + 8, 15));
            assertMessage(IllegalArgumentException.class, "not device memory", () -> opt.wrapDevicePointer(0x1000, 4));
            assertEquals(16, opt.wrapDevicePointer(memory.address(), 16).length());
            assertMessage(UnsupportedOperationException.class, "device memory only", () -> opt.wrapHost(new float[4]));
        }
    }

    /** Java arrays cannot be updated in place by device kernels: refused, naming what to do, and nothing is registered. */
    @Test
    void arraysAreRefusedOnCudaAndNothingIsRegistered() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Sgd.builder().build())) {
            ParamGroup group = opt.addGroup();
            assertMessage(UnsupportedOperationException.class, "only the CPU backends", () -> group.add("w", new float[4], new float[4]));
            assertEquals(List.of(), group.parameters());
            assertFalse(opt.parameter("w").isPresent());
            group.add("w", opt.allocate(4), opt.allocate(4)); // the name is still free
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
            float[] expected = Trajectory.cpu(config, weights, List.of(grads, grads));
            for (int[] offsets : new int[][] {{0, 0}, {1, 1}, {2, 2}, {3, 3}, {1, 2}, {0, 3}}) {
                try (CallerContext context = new CallerContext(0);
                     CallerContext.Allocation pm = context.allocate((n + 4) * 4L);
                     CallerContext.Allocation gm = context.allocate((n + 4) * 4L);
                     DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, config)) {
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

    /**
     * Stochastic rounding where the vectors begin at an element index of 7 mod 8: SGD (no states)
     * on a bf16 param and a grad both wrapped one element past a 16-byte boundary. Each element
     * still draws its own random word (element k: word k % 4 of the Philox block k / 4), as on the
     * CPU backend; with a bf16 grad (every operand 16-bit) and with a float32 one.
     */
    @Test
    void stochasticRoundingAtAnOddVectorPhaseDrawsTheReferencesBits() {
        int n = 1037; // vectors and a scalar head and tail
        float[] weights = CudaEquivalenceTest.gaussian(new Random(3), n, 1f);
        float[] grads = CudaEquivalenceTest.gaussian(new Random(4), n, 1f);
        OptimizerConfig config = Sgd.builder().optLearningRate(1e-3).build();
        for (Precision gradPrecision : new Precision[] {Precision.BF16, Precision.FP32}) {
            float[] expected;
            try (DeviceOptimizer cpu = DeviceOptimizer.builder(config).optBackend(Backend.CPU).optStochasticRounding(77).build()) {
                expected = twoSteps(cpu, cpu.allocate(n, Precision.BF16), cpu.allocate(n, gradPrecision), weights, grads);
            }
            try (CallerContext context = new CallerContext(0);
                 CallerContext.Allocation pm = context.allocate((n + 8) * 2L);
                 CallerContext.Allocation gm = context.allocate((n + 8) * 4L);
                 DeviceOptimizer cuda = DeviceOptimizer.builder(config).optBackend(Backend.CUDA).optStochasticRounding(77).build()) {
                float[] actual = twoSteps(cuda, cuda.wrapDevicePointer(pm.address() + 2, n, Precision.BF16),
                        cuda.wrapDevicePointer(gm.address() + gradPrecision.bytes(), n, gradPrecision), weights, grads);
                CudaEquivalenceTest.assertBitEqual(expected, actual, "bf16 param, " + gradPrecision + " grad, one element past 16 bytes");
            }
        }
    }

    private static float[] twoSteps(DeviceOptimizer opt, TensorBuffer p, TensorBuffer g, float[] weights, float[] grads) {
        p.copyFrom(weights);
        g.copyFrom(grads);
        opt.addGroup().add("w", p, g);
        opt.step();
        opt.step();
        return p.toArray();
    }

    /** A stream the test creates under its own retain of the context, as a framework would; its raw handle is what fusedopt takes. */
    static final class CallerStream extends jcuda.driver.CUstream implements AutoCloseable {
        private final CallerContext context;

        CallerStream(CallerContext context) {
            this.context = context;
            context.makeCurrent();
            CallerContext.check(JCudaDriver.cuStreamCreate(this, jcuda.driver.CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        }

        long handle() {
            return getNativePointer();
        }

        @Override
        public void close() {
            context.makeCurrent();
            CallerContext.check(JCudaDriver.cuStreamDestroy(this), "cuStreamDestroy");
        }
    }

    @Test
    void stepsRunOnTheCallersStream() {
        float[] weights = CudaEquivalenceTest.gaussian(new java.util.Random(5), 100_003, 1f);
        float[] grads = CudaEquivalenceTest.gaussian(new java.util.Random(6), 100_003, 1f);
        Adam adam = Adam.builder().optLearningRate(0.01).build();
        float[] expected = Trajectory.cpu(adam, weights, List.of(grads, grads, grads));
        try (CallerContext context = new CallerContext(0);
             CallerStream stream = new CallerStream(context);
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

    /**
     * A step captured and replayed on the legacy default stream (no stream given), then a plain
     * step: the engine uses the explicit CU_STREAM_LEGACY handle, since JCuda's cuGraphLaunch
     * throws NullPointerException for a null stream (after which the optimizer refused every step).
     */
    @Test
    void capturedStepReplaysOnTheDefaultStream() {
        int n = 70_003; // more than one chunk
        Random random = new Random(11);
        float[] weights = CudaEquivalenceTest.gaussian(random, n, 1f);
        List<float[]> grads = new ArrayList<>();
        for (int t = 0; t < 4; t++) grads.add(CudaEquivalenceTest.gaussian(random, n, 1f));
        Adam adam = Adam.adamW().optLearningRate(0.01).build();
        float[] expected = Trajectory.cpu(adam, weights, grads);
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, adam)) {
            TensorBuffer p = opt.allocate(n);
            TensorBuffer g = opt.allocate(n);
            p.copyFrom(weights);
            opt.addGroup().add("w", p, g);
            StepGraph graph = opt.captureStep();
            for (int t = 0; t < 3; t++) {
                g.copyFrom(grads.get(t));
                graph.replay();
            }
            g.copyFrom(grads.get(3));
            opt.step();
            assertEquals(4, opt.stepCount());
            CudaEquivalenceTest.assertBitEqual(expected, p.toArray(), "3 replays and a step on the default stream");
        }
    }

    /**
     * Memory of device 1 wrapped by an optimizer on device 0 is refused (its kernels would fault on
     * it), and the refusal changes nothing: the optimizer still wraps its own device's memory and
     * steps, and an optimizer on device 1 takes the same pointer.
     */
    @Test
    void anotherDevicesMemoryIsRefused() {
        int devices = CudaProbe.result().deviceCount();
        if (devices < 2) {
            assertFalse(GpuTests.onEmulator(), "the CUDA emulator has 2 devices, so this test must run on it");
            assumeTrue(false, "needs 2 CUDA devices; this machine has " + devices);
        }
        Sgd sgd = Sgd.builder().optLearningRate(0.5).build();
        try (CallerContext device1 = new CallerContext(1); CallerContext.Allocation other = device1.allocate(64);
             CallerContext device0 = new CallerContext(0); CallerContext.Allocation mine = device0.allocate(64);
             DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, sgd)) {
            long owned = opt.ownedBytes();
            assertMessage(IllegalArgumentException.class, "memory of CUDA device 1, but this optimizer runs on CUDA device 0",
                    () -> opt.wrapDevicePointer(other.address(), 16));
            assertEquals(owned, opt.ownedBytes());
            TensorBuffer p = opt.wrapDevicePointer(mine.address(), 16);
            TensorBuffer g = opt.allocate(16);
            p.copyFrom(new float[16]);
            float[] ones = new float[16];
            java.util.Arrays.fill(ones, 1f);
            g.copyFrom(ones);
            opt.addGroup().add("w", p, g);
            opt.step();
            java.util.Arrays.fill(ones, -0.5f);
            assertArrayEquals(ones, p.toArray());
            try (DeviceOptimizer onDevice1 = DeviceOptimizer.builder(sgd).optBackend(Backend.CUDA).optDeviceOrdinal(1).build()) {
                assertEquals(16, onDevice1.wrapDevicePointer(other.address(), 16).length());
            }
        }
    }

    /**
     * Any thread may close an optimizer, also one with no current context: closing the step program
     * must make the context current before it waits for the queued steps, else the wait fails (a
     * warning) and the tables those steps read are freed under them.
     */
    @Test
    void closingOnAThreadWithNoCurrentContextWaitsForQueuedSteps() throws Exception {
        Adam adam = Adam.builder().optLearningRate(0.01).build();
        int n = 1 << 20;
        float[] grads = CudaEquivalenceTest.gaussian(new Random(3), n, 1f);
        DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, adam);
        TensorBuffer g = opt.allocate(n);
        g.copyFrom(grads);
        opt.addGroup().add("w", opt.allocate(n), g);
        for (int t = 0; t < 5; t++) opt.step(); // queued, not waited for
        ExecutorService closer = Executors.newSingleThreadExecutor(); // a new thread: no context is current on it
        try (LogRecords log = new LogRecords()) {
            closer.submit(opt::close).get();
            assertEquals(List.of(), log.messages(Level.WARNING));
        } finally {
            closer.shutdown();
        }
        assertTrue(opt.isClosed());
        float[] expected = Trajectory.cpu(adam, new float[n], List.of(grads, grads));
        try (DeviceOptimizer again = DeviceOptimizer.create(Backend.CUDA, adam)) { // the device is still healthy
            TensorBuffer p = again.allocate(n);
            TensorBuffer g2 = again.allocate(n);
            g2.copyFrom(grads);
            again.addGroup().add("w", p, g2);
            again.step();
            again.step();
            CudaEquivalenceTest.assertBitEqual(expected, p.toArray(), "a new optimizer after the close");
        }
    }
}
