package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Resources: 10,000 optimizers created, stepped and closed leave no memory behind (heap on the
 * CPU backend, device memory on CUDA). Threads: the documented contract that concurrent step()
 * calls are whole steps, one after the other.
 */
class ResourceAndThreadTest {

    private static void churn(Backend backend, int count) {
        for (int i = 0; i < count; i++) {
            try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build()).optBackend(backend)
                    .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
                TensorBuffer p = opt.allocate(1000), g = opt.allocate(1000, Precision.BF16);
                opt.addGroup().add("w", p, g);
                opt.step();
                if (i % 2 == 0) opt.captureStep().replay();
                assertTrue(opt.ownedBytes() > 0);
            }
        }
    }

    private static long usedHeapAfterGc() throws InterruptedException {
        Runtime rt = Runtime.getRuntime();
        long best = Long.MAX_VALUE;
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(50);
            best = Math.min(best, rt.totalMemory() - rt.freeMemory());
        }
        return best;
    }

    @Test
    void tenThousandOptimizersLeaveNoHeapBehind() throws InterruptedException {
        churn(Backend.CPU, 500); // warm up classes and JIT
        long before = usedHeapAfterGc();
        churn(Backend.CPU, 10_000);
        long after = usedHeapAfterGc();
        System.out.printf("[fusedopt] heap after GC: %d KiB before, %d KiB after 10,000 optimizers%n", before >> 10, after >> 10);
        assertTrue(after - before < (8 << 20), "heap grew by " + ((after - before) >> 10) + " KiB");
    }

    /**
     * The test holds its own retain of the primary context for the whole run and measures inside
     * it: without one, every optimizer's close released the last retain, the driver reset the
     * context and freed everything, leaks included, so the check could not fail.
     */
    @Test
    @Tag("gpu")
    void tenThousandCudaOptimizersLeaveNoDeviceMemoryBehind() {
        GpuTests.assumeGpu();
        try (CallerContext context = new CallerContext(0)) {
            churn(Backend.CUDA, 200);
            long before = context.freeBytes();
            churn(Backend.CUDA, 10_000);
            long after = context.freeBytes();
            System.out.printf("[fusedopt] free device memory: %d KiB before, %d KiB after 10,000 optimizers%n", before >> 10, after >> 10);
            // Each optimizer makes a dozen allocations. The emulator counts bytes exactly, so any leak of
            // one per optimizer shows as at least 10,000 bytes. A GPU hands out memory in 2 MiB pages and
            // places allocations at least 256 bytes apart: allow one page of allocator slack, which such a
            // leak (2.5 MB or more) exceeds.
            long allowed = GpuTests.onEmulator() ? 10_000 - 1 : 2 << 20;
            assertTrue(before - after <= allowed, "device memory shrank by " + (before - after) + " bytes (allowed: " + allowed + ")");
        }
    }

    @Test
    void concurrentStepsAreWholeStepsOneAfterTheOther() throws Exception {
        Sgd sgd = Sgd.builder().optLearningRate(0.01).build();
        float[] grad = Scenario.gaussian(new java.util.Random(1), 10_000, 1f);
        float[] sequential;
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, sgd)) {
            TensorBuffer p = opt.allocate(grad.length), g = opt.allocate(grad.length);
            g.copyFrom(grad);
            opt.addGroup().add("w", p, g);
            for (int i = 0; i < 200; i++) opt.step();
            sequential = p.toArray();
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, sgd)) {
            TensorBuffer p = opt.allocate(grad.length), g = opt.allocate(grad.length);
            g.copyFrom(grad);
            opt.addGroup().add("w", p, g);
            ExecutorService pool = Executors.newFixedThreadPool(2);
            CountDownLatch start = new CountDownLatch(1);
            try {
                Future<?> a = pool.submit(() -> { start.await(); for (int i = 0; i < 100; i++) opt.step(); return null; });
                Future<?> b = pool.submit(() -> { start.await(); for (int i = 0; i < 100; i++) opt.step(); return null; });
                start.countDown();
                a.get();
                b.get();
            } finally {
                pool.shutdown();
            }
            assertEquals(200, opt.stepCount());
            CudaEquivalenceTest.assertBitEqual(sequential, p.toArray(), "two threads x 100 steps vs 200 steps");
        }
    }
}
