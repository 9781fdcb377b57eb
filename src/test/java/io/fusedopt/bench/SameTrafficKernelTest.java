package io.fusedopt.bench;

import io.fusedopt.cpu.BenchmarkTeam;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.StateQuantization;
import io.fusedopt.internal.SegmentTable;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/** The same-traffic roofline moves exactly the update's bytes, over every element, once per step. */
class SameTrafficKernelTest {
    private static final int CHUNK = (int) SegmentTable.CHUNK_ELEMENTS;
    /** Whole chunks, a short last chunk, a one-element tensor and a tensor shorter than a vector. */
    private static final long[] LENGTHS = {2L * CHUNK + 13, 1, 5, CHUNK};

    @Test
    void trafficIsTheUpdatePlansBytesForEveryAlgorithmAndStorage() {
        List<String> algorithms = new ArrayList<>(CpuReport.ALGORITHMS);
        algorithms.addAll(CpuReport.EXTRA_ALGORITHMS);
        for (String algorithm : algorithms) {
            for (String storage : List.of("fp32", "bf16-master")) {
                assertEquals(new CpuReport.Case(algorithm, storage, "one:1").bytesPerStep(),
                        SameTrafficKernel.Traffic.of(algorithm, storage).bytesPerElement(), algorithm + " " + storage);
            }
        }
        // 8-bit states: a tensor too small for them, one of whole blocks, one with a partial last block
        long[] lengths = {StateQuantization.MIN_ELEMENTS - 1, 1L << 20, StateQuantization.MIN_ELEMENTS + 300};
        for (String algorithm : CpuReport.QUANTIZED_ALGORITHMS) {
            for (String storage : List.of("fp32-q8", "bf16-master-q8")) {
                assertEquals(StepBenchmark.bytesPerStep(algorithm, storage, lengths),
                        SameTrafficKernel.Traffic.of(algorithm, storage).bytesPerStep(lengths), algorithm + " " + storage);
            }
        }
        assertEquals(16 * (1L << 24) + 2 * 2 * 4 * (1L << 16), SameTrafficKernel.Traffic.of("adam", "fp32-q8").bytesPerStep(new long[] {1L << 24}));
        assertEquals(12, SameTrafficKernel.Traffic.of("sgd", "fp32").bytesPerElement());
        assertEquals(36, SameTrafficKernel.Traffic.of("rmsprop-centered-momentum", "fp32").bytesPerElement());
        assertEquals("reads fp32 master, bf16 grad, 2 states; writes master, bf16 param, 2 states",
                SameTrafficKernel.Traffic.of("adam", "bf16-master").describe());
    }

    @Test
    void everyWrittenElementIsWrittenOncePerStepOnAnyThreadCount() {
        for (int threads : new int[] {1, 3}) {
            for (int states = 0; states <= 3; states++) {
                try (SameTrafficKernel k = new SameTrafficKernel(new SameTrafficKernel.Traffic(states, false, false), LENGTHS, threads)) {
                    k.run();
                    k.run();
                    float grad = 1e-3f, twice = (1f + grad) + grad;
                    for (int t = 0; t < LENGTHS.length; t++) {
                        assertAll(k.floatParam(t), twice, "param, tensor " + t + ", " + threads + " threads");
                        for (int s = 0; s < states; s++) assertAll(k.state(t, s), grad + grad, "state " + s + ", tensor " + t);
                    }
                }
            }
        }
    }

    @Test
    void widenedTrafficWritesTheMasterTheBf16ParamAndEveryState() {
        try (SameTrafficKernel k = new SameTrafficKernel(new SameTrafficKernel.Traffic(3, true, false), LENGTHS, 2)) {
            k.run();
            short bf16Grad = (short) (Float.floatToIntBits(1e-3f) >>> 16);
            for (int t = 0; t < LENGTHS.length; t++) {
                assertAll(k.master(t), 1f + 1e-3f, "master, tensor " + t);
                for (int s = 0; s < 3; s++) assertAll(k.state(t, s), 1e-3f, "state " + s + ", tensor " + t);
                short[] p = k.shortParam(t);
                for (int i = 0; i < p.length; i++) assertEquals(bf16Grad, p[i], "bf16 param element " + i + ", tensor " + t);
            }
        }
    }

    /**
     * With 8-bit states a tensor of at least MIN_ELEMENTS elements adds to every code byte and to
     * every block's absmax once per step (a partial last block included), a smaller one to its
     * float states; the param as without states.
     */
    @Test
    void quantizedTrafficWritesEveryCodeAndEveryBlocksAbsmaxOnce() {
        for (boolean bf16Master : new boolean[] {false, true}) {
            try (SameTrafficKernel k = new SameTrafficKernel(new SameTrafficKernel.Traffic(2, bf16Master, true), LENGTHS, 3)) {
                k.run();
                k.run();
                for (int t = 0; t < LENGTHS.length; t++) {
                    String what = "tensor " + t + (bf16Master ? ", bf16 master" : "");
                    if (bf16Master) assertAll(k.master(t), (1f + 1e-3f) + 1e-3f, "master, " + what);
                    else assertAll(k.floatParam(t), (1f + 1e-3f) + 1e-3f, "param, " + what);
                    for (int s = 0; s < 2; s++) {
                        if (LENGTHS[t] < StateQuantization.MIN_ELEMENTS) {
                            assertEquals(null, k.codes(t, s), what);
                            assertAll(k.state(t, s), 1e-3f + 1e-3f, "float state " + s + ", " + what);
                            continue;
                        }
                        byte[] c = k.codes(t, s);
                        for (int i = 0; i < c.length; i++) assertEquals(2, c[i], "code " + i + " of state " + s + ", " + what);
                        assertEquals((c.length + 255) / 256, k.absmax(t, s).length, what);
                        assertAll(k.absmax(t, s), 1e-3f + 1e-3f, "absmax of state " + s + ", " + what);
                    }
                }
            }
        }
    }

    @Test
    void theTeamRunsEachItemExactlyOnceAndPassesFailuresOn() {
        int items = 1000;
        try (BenchmarkTeam team = new BenchmarkTeam(4)) {
            for (int loop = 0; loop < 20; loop++) {
                AtomicIntegerArray seen = new AtomicIntegerArray(items);
                team.run(items, (worker, item) -> {
                    assertTrue(worker >= 0 && worker < 4);
                    seen.incrementAndGet(item);
                });
                for (int i = 0; i < items; i++) assertEquals(1, seen.get(i), "item " + i + " of loop " + loop);
            }
            RuntimeException failure = new IllegalStateException("chunk 7 failed");
            assertEquals(failure, assertThrows(IllegalStateException.class, () -> team.run(items, (w, i) -> {
                if (i == 7) throw failure;
            })), "a task's failure reaches the caller");
        }
    }

    @Test
    void refusedShapesSayWhatIsWrong() {
        SameTrafficKernel.Traffic adam = SameTrafficKernel.Traffic.of("adam", "fp32");
        assertMessage("0 to 3 state arrays, got 4", () -> new SameTrafficKernel.Traffic(4, false, false));
        assertMessage("at least one tensor", () -> new SameTrafficKernel(adam, new long[0], 1));
        assertMessage("at least 1 thread, got 0", () -> new SameTrafficKernel(adam, new long[] {8}, 0));
        assertMessage("tensor 1 has 0 elements", () -> new SameTrafficKernel(adam, new long[] {8, 0}, 1));
        assertMessage("tensor 0 has 4294967296 elements", () -> new SameTrafficKernel(adam, new long[] {1L << 32}, 1));
        assertMessage("unknown algorithm 'frobnicator'", () -> SameTrafficKernel.Traffic.of("frobnicator", "fp32"));
        assertMessage("unknown storage fp8", () -> SameTrafficKernel.Traffic.of("adam", "fp8"));
        assertMessage("at least 1 thread, got 0", () -> new BenchmarkTeam(0));
        BenchmarkTeam closed = new BenchmarkTeam(2);
        closed.close();
        assertMessage("the worker team is closed", () -> closed.run(4, (w, i) -> { }));
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        Throwable thrown = assertThrows(RuntimeException.class, call);
        assertTrue(thrown.getMessage().contains(expected), "message '" + thrown.getMessage() + "' should contain '" + expected + "'");
    }

    private static void assertAll(float[] values, float expected, String what) {
        for (int i = 0; i < values.length; i++) assertEquals(expected, values[i], what + ", element " + i);
    }
}
