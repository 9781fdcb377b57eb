package io.fusedopt;

import static io.fusedopt.ValidationTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.ref.WeakReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** close() frees what the library owns, and every later call is an IllegalStateException. */
class LifecycleTest {

    @Test
    void everyCallAfterCloseIsAnIllegalStateException() {
        DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build());
        ParamGroup group = opt.addGroup();
        TensorBuffer p = opt.allocate(8);
        Parameter w = group.add("w", p, opt.allocate(8));
        TensorBuffer m = w.state(StateKind.EXP_AVG);
        opt.step();
        opt.close();
        opt.close(); // idempotent

        assertTrue(opt.isClosed());
        assertTrue(p.isClosed());
        assertMessage(IllegalStateException.class, "closed", opt::step);
        assertMessage(IllegalStateException.class, "closed", opt::stepCount);
        assertMessage(IllegalStateException.class, "closed", () -> opt.allocate(1));
        assertMessage(IllegalStateException.class, "closed", opt::addGroup);
        assertMessage(IllegalStateException.class, "closed", opt::groups);
        assertMessage(IllegalStateException.class, "closed", opt::synchronize);
        assertMessage(IllegalStateException.class, "closed", opt::ownedBytes);
        assertMessage(IllegalStateException.class, "closed", () -> opt.wrapHost(new float[1]));
        assertMessage(IllegalStateException.class, "closed", () -> group.setLearningRate(0.1));
        assertMessage(IllegalStateException.class, "closed", group::config);
        assertMessage(IllegalStateException.class, "closed", () -> group.add("x", p, p));
        assertMessage(IllegalStateException.class, "closed", () -> w.state(StateKind.EXP_AVG));
        assertMessage(IllegalStateException.class, "closed", p::toArray);
        assertMessage(IllegalStateException.class, "closed", () -> p.copyFrom(new float[8]));
        assertMessage(IllegalStateException.class, "closed", m::toArray);
        p.close(); // closing a buffer of a closed optimizer is harmless
    }

    @Test
    void ownedMemoryIsAccountedAndFreed() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().optAmsgrad(true).build())) {
            assertEquals(0, opt.ownedBytes());
            TensorBuffer p = opt.allocate(100);
            TensorBuffer g = opt.allocate(100);
            assertEquals(800, opt.ownedBytes());
            opt.addGroup().add("w", p, g);
            assertEquals(800 + 3 * 400, opt.ownedBytes(), "m, v and max_v are owned state");
            TensorBuffer scratch = opt.allocate(10);
            scratch.close();
            assertTrue(scratch.isClosed());
            assertEquals(800 + 3 * 400, opt.ownedBytes());
        }
    }

    @Test
    void registeredBuffersCannotBeClosedEarlyButWrappedMemoryIsNeverFreed() {
        float[] callerWeights = {1f, 2f, 3f};
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().optLearningRate(1).build())) {
            TensorBuffer p = opt.wrapHost(callerWeights);
            TensorBuffer g = opt.allocate(3);
            assertFalse(p.isOwnedByLibrary());
            opt.addGroup().add("w", p, g);
            assertMessage(IllegalStateException.class, "registered", p::close);
            assertMessage(IllegalStateException.class, "registered", g::close);
            g.copyFrom(new float[] {1f, 1f, 1f});
            opt.step();
        }
        // the wrapped array was updated in place and is still the caller's
        assertEquals(0f, callerWeights[0]);
        assertEquals(2f, callerWeights[2]);
    }

    /**
     * A registered direct buffer whose caller dropped every reference of its own stays reachable
     * through the optimizer, so the collector cannot free its memory under a step.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aWrappedDirectBufferStaysReachableWhileRegistered(Backend backend) throws InterruptedException {
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().optLearningRate(1).build())) {
            WeakReference<ByteBuffer> memory = registerDirectWeights(opt);
            for (int i = 0; i < 3; i++) {
                System.gc();
                Thread.sleep(20);
            }
            assertNotNull(memory.get(), "the optimizer holds the wrapped buffer");
            Parameter w = opt.groups().get(0).parameters().get(0);
            w.grad().copyFrom(new float[] {1f, 1f, 1f});
            opt.step();
            assertArrayEquals(new float[] {0f, 1f, 2f}, w.param().toArray());
        }
    }

    /** Registers weights {1, 2, 3} in a direct buffer and returns only a weak reference to its memory. */
    private static WeakReference<ByteBuffer> registerDirectWeights(DeviceOptimizer opt) {
        ByteBuffer bytes = ByteBuffer.allocateDirect(3 * Float.BYTES).order(ByteOrder.nativeOrder());
        bytes.asFloatBuffer().put(new float[] {1f, 2f, 3f});
        opt.addGroup().add("w", opt.wrapHost(bytes.asFloatBuffer()), opt.allocate(3));
        return new WeakReference<>(bytes);
    }

    @Test
    void twoThreadsSteppingAtOnceMakeTwoWholeSteps() throws Exception {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().optLearningRate(1).build())) {
            int n = 1 << 16;
            TensorBuffer p = opt.allocate(n);
            TensorBuffer g = opt.allocate(n);
            float[] ones = new float[n];
            java.util.Arrays.fill(ones, 1f);
            g.copyFrom(ones);
            opt.addGroup().add("w", p, g);
            int stepsEach = 50;
            Thread a = new Thread(() -> { for (int i = 0; i < stepsEach; i++) opt.step(); });
            Thread b = new Thread(() -> { for (int i = 0; i < stepsEach; i++) opt.step(); });
            a.start();
            b.start();
            a.join();
            b.join();
            assertEquals(2 * stepsEach, opt.stepCount());
            float[] result = p.toArray();
            for (float v : result) assertEquals(-2f * stepsEach, v, "every element saw every step exactly once");
        }
    }
}
