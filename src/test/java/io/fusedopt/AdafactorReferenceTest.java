package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Json;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link Adafactor}'s configuration, and its float32 step on the CPU reference backend (the other
 * backends match it bit for bit: {@link AdafactorTest}) held within rounding of the float64
 * transcription of PyTorch's {@code _single_tensor_adafactor} (src/test/python/adafactor_reference.py,
 * data in src/test/resources/io/fusedopt/adafactor-reference/), fed the stored gradients, each
 * tensor registered with its shape.
 */
class AdafactorReferenceTest {
    private static final String RESOURCE = "/io/fusedopt/adafactor-reference/adafactor.json";

    record Tensor(String name, long[] shape, float[] initial, float[][] grads, float[][] params, Map<String, Object> finalState,
                  long finalStep) {}

    static Stream<Arguments> tensors() throws IOException, Json.SyntaxException {
        String text;
        try (InputStream in = AdafactorReferenceTest.class.getResourceAsStream(RESOURCE)) {
            assertNotNull(in, RESOURCE);
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        Json.Reader reader = new Json.Reader(text, 16, 100, 1000);
        Map<String, Object> document = TorchAgreementTest.object(TorchAgreementTest.read(reader));
        reader.end();
        assertEquals("fusedopt adafactor-reference 1", document.get("format"));
        List<Arguments> out = new ArrayList<>();
        for (Object c : TorchAgreementTest.list(document.get("cases"))) {
            Map<String, Object> spec = TorchAgreementTest.object(c);
            Adafactor config = config(TorchAgreementTest.object(spec.get("fusedopt")));
            for (Object t : TorchAgreementTest.list(spec.get("tensors"))) {
                Map<String, Object> tensor = TorchAgreementTest.object(t);
                long[] shape = TorchAgreementTest.list(tensor.get("shape")).stream()
                        .mapToLong(v -> (long) TorchAgreementTest.number(v)).toArray();
                out.add(Arguments.of(spec.get("name") + "/" + tensor.get("name"), config, new Tensor((String) tensor.get("name"),
                        shape, TorchAgreementTest.floats(tensor.get("initial")), steps(tensor.get("grads")),
                        steps(tensor.get("params")), TorchAgreementTest.object(tensor.get("final_state")),
                        (long) TorchAgreementTest.number(tensor.get("final_step")))));
            }
        }
        assertEquals(12, out.size(), "3 cases of 4 tensors");
        return out.stream();
    }

    private static Adafactor config(Map<String, Object> v) {
        return Adafactor.builder().optLearningRate(TorchAgreementTest.number(v.get("learningRate")))
                .optBeta2Decay(TorchAgreementTest.number(v.get("beta2Decay")))
                .optEps(TorchAgreementTest.number(v.get("eps1")), TorchAgreementTest.number(v.get("eps2")))
                .optD(TorchAgreementTest.number(v.get("d"))).optWeightDecay(TorchAgreementTest.number(v.get("weightDecay")))
                .optMaximize((Boolean) v.get("maximize")).build();
    }

    private static float[][] steps(Object value) {
        return TorchAgreementTest.list(value).stream().map(TorchAgreementTest::floats).toArray(float[][]::new);
    }

    /**
     * Every parameter after every step within {@code 2e-5 |ref| + 1e-6 max|ref| + 1e-5 path}
     * (TorchAgreementTest's bound; path: the distance the element travelled in the reference so far),
     * and the final factors or variance within 1e-5 relative plus 1e-6 of the largest.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("tensors")
    void float32StepIsWithinRoundingOfTheFloat64Transcription(String label, Adafactor config, Tensor tensor) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            int n = tensor.initial().length;
            TensorBuffer p = opt.allocate(n), g = opt.allocate(n);
            p.copyFrom(tensor.initial());
            Parameter parameter = opt.addGroup().add("w", p, g, tensor.shape());
            float[] param = new float[n];
            double[] path = new double[n];
            float[] previous = tensor.initial();
            double worst = 0;
            for (int s = 0; s < tensor.grads().length; s++) {
                g.copyFrom(tensor.grads()[s]);
                opt.step();
                p.copyTo(param);
                float[] expected = tensor.params()[s];
                double largest = 0;
                for (float e : expected) largest = Math.max(largest, Math.abs(e));
                for (int k = 0; k < n; k++) {
                    path[k] += Math.abs((double) expected[k] - previous[k]);
                    double bound = 2e-5 * Math.abs(expected[k]) + 1e-6 * largest + 1e-5 * path[k];
                    double error = Math.abs((double) param[k] - expected[k]);
                    worst = Math.max(worst, error / bound);
                    int step = s + 1, element = k;
                    assertTrue(error <= bound, () -> label + " step " + step + " element " + element + ": " + param[element]
                            + " vs float64 " + expected[element] + " (bound " + bound + ")");
                }
                previous = expected;
            }
            assertEquals(tensor.finalStep(), parameter.stepCount(), label);
            if (tensor.shape().length >= 2) {
                assertEquals(List.of(StateKind.ROW_VAR, StateKind.COL_VAR), parameter.stateKinds(), label);
                assertStateClose(label + " row_var", parameter.state(StateKind.ROW_VAR).toArray(), tensor.finalState().get("row_var"));
                assertStateClose(label + " col_var", parameter.state(StateKind.COL_VAR).toArray(), tensor.finalState().get("col_var"));
            } else {
                assertEquals(List.of(StateKind.VARIANCE), parameter.stateKinds(), label);
                assertStateClose(label + " variance", parameter.state(StateKind.VARIANCE).toArray(), tensor.finalState().get("variance"));
            }
        // The trajectories move well beyond the bound's floor, so the comparison is not vacuous.
            assertTrue(!java.util.Arrays.equals(param, tensor.initial()), label + ": the parameter never moved");
            System.out.printf("%s: worst error / bound %.3g%n", label, worst);
        }
    }

    private static void assertStateClose(String label, float[] actual, Object stored) {
        Map<String, Object> spec = TorchAgreementTest.object(stored);
        float[] expected = TorchAgreementTest.floats(spec.get("values"));
        assertEquals(expected.length, actual.length, label + " length");
        double largest = 0;
        for (float e : expected) largest = Math.max(largest, Math.abs(e));
        for (int k = 0; k < expected.length; k++) {
            double bound = 1e-5 * Math.abs(expected[k]) + 1e-6 * largest;
            int element = k;
            assertTrue(Math.abs((double) actual[k] - expected[k]) <= bound,
                    () -> label + "[" + element + "]: " + actual[element] + " vs float64 " + expected[element]);
        }
    }

    @Test
    void defaultsAreTorchs() {
        Adafactor a = Adafactor.builder().build();
        assertEquals(new Adafactor(1e-2, -0.8, 0x1p-23, 1e-3, 1.0, 0.0, false), a);
        assertEquals((float) Math.ulp(1f), (float) a.eps1(), "eps1 None is the float32 epsilon");
        assertEquals(a, a.toBuilder().build());
        assertEquals(0.5, a.withLearningRate(0.5).learningRate());
    }

    @Test
    void refusesEachBadValueByName() {
        assertRefused("learningRate", () -> Adafactor.builder().optLearningRate(-1e-3).build());
        assertRefused("beta2Decay", () -> Adafactor.builder().optBeta2Decay(0.1).build());
        assertRefused("eps1", () -> Adafactor.builder().optEps(-1e-30, 1e-3).build());
        assertRefused("eps2", () -> Adafactor.builder().optEps(1e-30, Double.NaN).build());
        assertRefused("d", () -> Adafactor.builder().optD(0.5).build());
        assertRefused("weightDecay", () -> Adafactor.builder().optWeightDecay(-0.1).build());
        // Boundaries PyTorch accepts.
        Adafactor.builder().optBeta2Decay(0).optD(1).optEps(0, 0).optLearningRate(0).build();
    }

    private static void assertRefused(String name, Supplier<Adafactor> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().startsWith(name + " must be"), e.getMessage());
    }
}
