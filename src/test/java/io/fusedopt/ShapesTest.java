package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Tensors registered with a shape: what {@link Parameter#shape()} says, the shapes refused (with
 * nothing registered), the shapes a checkpoint records for the param and every state (an 8-bit
 * state's codes too), and a load into another shape refused by a strict load and reported by a
 * non-strict one.
 */
class ShapesTest {
    private static DeviceOptimizer open(StateQuantization quantization) {
        return DeviceOptimizer.builder(Adam.adamW().build()).optBackend(Backend.CPU).optStateQuantization(quantization).build();
    }

    @Test
    void aParameterKeepsTheShapeItWasRegisteredWith() {
        try (DeviceOptimizer opt = open(StateQuantization.NONE)) {
            ParamGroup g = opt.addGroup();
            Parameter matrix = g.add("w", opt.allocate(12), opt.allocate(12), 3, 4);
            Parameter flat = g.add("b", opt.allocate(5), opt.allocate(5));
            Parameter scalar = g.add("s", opt.allocate(1), opt.allocate(1), new long[0]);
            assertArrayEquals(new long[] {3, 4}, matrix.shape());
            assertTrue(matrix.toString().startsWith("Parameter[w, 12 elements [3, 4], FP32"), matrix.toString());
            assertArrayEquals(new long[] {5}, flat.shape());
            assertTrue(flat.toString().startsWith("Parameter[b, 5 elements, FP32"), flat.toString());
            assertArrayEquals(new long[0], scalar.shape());
            matrix.shape()[0] = 7; // a copy
            assertArrayEquals(new long[] {3, 4}, matrix.shape());
        }
    }

    @Test
    void shapesThatDoNotFitAreRefusedWithNothingRegistered() {
        try (DeviceOptimizer opt = open(StateQuantization.NONE)) {
            ParamGroup g = opt.addGroup();
            TensorBuffer p = opt.allocate(12), dw = opt.allocate(12);
            Map<String, long[]> bad = Map.of(
                    "shape [3, 5] of 15 elements, but its buffers hold 12", new long[] {3, 5},
                    "shape [-3, -4]: dimensions are >= 0", new long[] {-3, -4},
                    "of rank 5; at most 4 dimensions", new long[] {1, 1, 3, 4, 1},
                    "more elements than a long holds", new long[] {1L << 40, 1L << 40, 0});
            bad.forEach((message, shape) -> {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.add("w", p, dw, shape));
                assertTrue(e.getMessage().contains("param 'w' has " + (message.startsWith("more") || message.startsWith("of rank")
                        ? "shape " + java.util.Arrays.toString(shape) : "") ) && e.getMessage().contains(message), e.getMessage());
            });
            assertEquals(List.of(), g.parameters());
            assertArrayEquals(new long[] {2, 6}, g.add("w", p, dw, 2, 6).shape()); // the name and the buffers are still free
        }
    }

    /** The JSON header of a checkpoint, as text. */
    private static String header(byte[] checkpoint) {
        long n = 0;
        for (int i = 7; i >= 0; i--) n = n << 8 | (checkpoint[i] & 0xFF);
        return new String(checkpoint, 8, (int) n, StandardCharsets.UTF_8);
    }

    @Test
    void checkpointsRecordShapesAndALoadChecksThem() throws Exception {
        int rows = 64, cols = 80; // 5120 elements: 8-bit states
        byte[] saved;
        float[] trainedW;
        try (DeviceOptimizer opt = open(StateQuantization.BLOCKWISE_8BIT)) {
            TensorBuffer w = opt.allocate(rows * cols);
            w.copyFrom(Scenario.gaussian(new Random(1), rows * cols, 1f));
            Parameter p = opt.addGroup().add("w", w, opt.allocate(rows * cols), rows, cols);
            opt.addGroup().add("b", opt.allocate(3), opt.allocate(3));
            p.grad().copyFrom(Scenario.gaussian(new Random(2), rows * cols, 1f));
            opt.step();
            saved = opt.saveToBytes();
            trainedW = w.toArray();
        }
        String header = header(saved);
        for (String tensor : List.of("param", "exp_avg", "exp_avg_sq")) {
            assertTrue(header.contains("\"w/" + tensor + "\":{\"dtype\":\"" + (tensor.equals("param") ? "F32" : "U8") + "\",\"shape\":[64,80]"),
                    tensor + " in " + header);
        }
        assertTrue(header.contains("\"w/exp_avg.absmax\":{\"dtype\":\"F32\",\"shape\":[20]"), header);
        assertTrue(header.contains("\"b/param\":{\"dtype\":\"F32\",\"shape\":[3]"), header);

        try (DeviceOptimizer opt = open(StateQuantization.BLOCKWISE_8BIT)) {
            Parameter p = opt.addGroup().add("w", opt.allocate(rows * cols), opt.allocate(rows * cols), rows, cols);
            opt.addGroup().add("b", opt.allocate(3), opt.allocate(3));
            opt.load(saved);
            assertArrayEquals(trainedW, p.param().toArray());
        }
        for (long[] other : List.of(new long[] {cols, rows}, new long[] {rows * cols})) {
            try (DeviceOptimizer opt = open(StateQuantization.BLOCKWISE_8BIT)) {
                Parameter p = opt.addGroup().add("w", opt.allocate(rows * cols), opt.allocate(rows * cols), other);
                opt.addGroup().add("b", opt.allocate(3), opt.allocate(3));
                float[] before = p.param().toArray();
                CheckpointException e = assertThrows(CheckpointException.class, () -> opt.load(saved));
                String expected = "tensor 'w/param' has shape [64, 80], this optimizer's has " + java.util.Arrays.toString(other);
                assertTrue(e.getMessage().contains(expected), e.getMessage());
                assertArrayEquals(before, p.param().toArray(), "nothing changed");
                LoadReport report = opt.load(new java.io.ByteArrayInputStream(saved), LoadOptions.builder().optStrict(false).build());
                assertTrue(report.mismatched().get("w/exp_avg").contains("has shape [64, 80]"), report.toString());
                assertTrue(report.loaded().contains("b/param"), report.toString());
            }
        }
    }
}
