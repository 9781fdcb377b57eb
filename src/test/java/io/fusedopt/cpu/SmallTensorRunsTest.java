package io.fusedopt.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.Precision;
import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Engine;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Which small tensors {@link SmallTensorRuns} puts in a run, and the moves that lay a run's operands
 * side by side: on both CPU backends' buffers, as a model allocates them (a param, its grad, the
 * next param..., each tensor's states together), a move keeps every tensor's values and a second
 * preparation moves nothing; tensors already side by side stay where they are; a run ends at a
 * group, at a caller's memory, at another set of state slots and at one chunk of elements.
 */
class SmallTensorRunsTest {
    static Stream<Arguments> engines() {
        return Stream.of(Arguments.of("CPU", (Supplier<Engine>) CpuEngine::new),
                Arguments.of("CPU_FAST", (Supplier<Engine>) () -> new FastCpuEngine(1)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("engines")
    void interleavedTensorsAreMovedSideBySideOnceKeepingTheirValues(String name, Supplier<Engine> engines) {
        try (Engine engine = engines.get()) {
            int[] sizes = {1, 4, 9, 3, 17, 2};
            CarvedFloats[][] operands = new CarvedFloats[sizes.length][];
            for (int t = 0; t < sizes.length; t++) {
                // As a model and registration allocate: param, grad, then the two states.
                operands[t] = new CarvedFloats[] {filled(engine, sizes[t], t, 0), filled(engine, sizes[t], t, 1),
                        filled(engine, sizes[t], t, 2), filled(engine, sizes[t], t, 3), null};
            }
            boolean[] inRun = new boolean[sizes.length];
            List<SmallTensorRuns.Run> runs = SmallTensorRuns.form(operands, lengths(sizes), new int[sizes.length], inRun);

            assertEquals(1, runs.size());
            SmallTensorRuns.Run run = runs.get(0);
            assertEquals(0, run.first());
            assertEquals(sizes.length, run.count());
            assertEquals(36, run.length());
            assertNull(run.arrays()[4], "no third state");
            for (boolean b : inRun) assertTrue(b);
            for (int j = 0; j < 4; j++) {
                int at = run.offsets()[j];
                for (int t = 0; t < sizes.length; t++) {
                    assertSame(run.arrays()[j], operands[t][j].carvedArray(), "operand " + j + " of tensor " + t + " is in the run's array");
                    assertEquals(at, operands[t][j].carvedOffset(), "operand " + j + " of tensor " + t + " follows the one before");
                    assertArrayEquals(values(sizes[t], t, j), ((AbstractTensorBuffer) operands[t][j]).toArray(), "values kept");
                    at += sizes[t];
                }
                for (int k = 0; k < j; k++) assertNotSame(run.arrays()[k], run.arrays()[j], "each operand its own array");
            }

            List<SmallTensorRuns.Run> again = SmallTensorRuns.form(operands, lengths(sizes), new int[sizes.length], inRun);
            for (int j = 0; j < 4; j++) {
                assertSame(run.arrays()[j], again.get(0).arrays()[j], "a second preparation moves nothing");
                assertEquals(run.offsets()[j], again.get(0).offsets()[j]);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("engines")
    void tensorsAlreadySideBySideStayWhereTheyAre(String name, Supplier<Engine> engines) {
        try (Engine engine = engines.get()) {
            int[] sizes = {3, 5, 8};
            CarvedFloats[][] operands = new CarvedFloats[sizes.length][5];
            for (int j = 0; j < 2; j++) for (int t = 0; t < sizes.length; t++) operands[t][j] = filled(engine, sizes[t], t, j);
            float[] params = operands[0][0].carvedArray();
            int firstParam = operands[0][0].carvedOffset();

            SmallTensorRuns.Run run = SmallTensorRuns.form(operands, lengths(sizes), new int[sizes.length], new boolean[sizes.length]).get(0);

            assertSame(params, run.arrays()[0], "the params' shared array itself");
            assertEquals(firstParam, run.offsets()[0]);
            assertSame(params, operands[2][0].carvedArray(), "not moved");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("engines")
    void aRunEndsAtAGroupACallersTensorOtherSlotsAndOneChunk(String name, Supplier<Engine> engines) {
        try (Engine engine = engines.get()) {
            int big = SmallTensorArena.MAX_ELEMENTS; // 16 of them fill one run
            int[] sizes = {2, 2, 2, 2, 2, 2, 2, 2, 2, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big};
            int[] groups = {0, 0, 0, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3};
            CarvedFloats[][] operands = new CarvedFloats[sizes.length][];
            for (int t = 0; t < sizes.length; t++) {
                operands[t] = new CarvedFloats[] {filled(engine, sizes[t], t, 0), filled(engine, sizes[t], t, 1), null, null, null};
            }
            operands[4][0] = (CarvedFloats) engine.wrapHost(FloatBuffer.wrap(new float[2])); // a caller's param
            operands[6][2] = filled(engine, 2, 6, 2); // a state the others lack
            boolean[] inRun = new boolean[sizes.length];

            List<SmallTensorRuns.Run> runs = SmallTensorRuns.form(operands, lengths(sizes), groups, inRun);

            assertNull(operands[4][0].carvedArray(), "a caller's memory is never moved");
            assertNull(((CarvedFloats) engine.allocate(4, Precision.BF16, 0f)).carvedArray(), "nor 16-bit elements");
            // [0, 3) group 0; group 1 split by the caller's tensor 4 and tensor 6's slots: 3 alone, [5, 6) alone, 6 alone, 7 alone;
            // 8 alone in group 2; group 3: 16 tensors of 4096 elements make one chunk, the 17th is alone.
            assertEquals(List.of("0+3", "9+16"), runs.stream().map(r -> r.first() + "+" + r.count()).toList());
            assertEquals(SmallTensorRuns.MAX_RUN_ELEMENTS, runs.get(1).length());
            for (int t = 0; t < sizes.length; t++) assertEquals(t < 3 || (t >= 9 && t < 25), inRun[t], "tensor " + t);
            assertFalse(inRun[25]);
        }
    }

    private static CarvedFloats filled(Engine engine, int size, int tensor, int operand) {
        AbstractTensorBuffer b = engine.allocate(size, Precision.FP32, 0f);
        b.copyFrom(values(size, tensor, operand));
        return (CarvedFloats) b;
    }

    private static float[] values(int size, int tensor, int operand) {
        float[] v = new float[size];
        for (int i = 0; i < size; i++) v[i] = 1000f * tensor + 100f * operand + i;
        return v;
    }

    private static long[] lengths(int[] sizes) {
        long[] lengths = new long[sizes.length];
        for (int t = 0; t < sizes.length; t++) lengths[t] = sizes[t];
        return lengths;
    }
}
