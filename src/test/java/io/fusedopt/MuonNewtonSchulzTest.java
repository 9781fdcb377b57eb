package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Json;
import io.fusedopt.internal.NewtonSchulz;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The {@link Muon} configuration's defaults and refusals, and
 * the float32 exact-mode Newton-Schulz ({@link NewtonSchulz}) against the float64
 * transcription of PyTorch's {@code _zeropower_via_newtonschulz} stored by
 * src/test/python/muon_reference.py.
 *
 * <p>Bound: |O32 - O64| &lt;= {@value #BOUND} per element, where the elements of O are O(1)
 * (singular values in about [0.5, 1.5]). Each of the 5 iterations is a degree-5 polynomial whose
 * slope at 0 is a = 3.4445, so an error in a small singular direction grows by at most a^5 ~ 490
 * over the iteration, while each product adds a few float32 roundings (2^-24 relative) times its
 * length (at most 16 here): 490 * 16 * 2^-24 ~ 5e-4 is the crude worst case. Measured on the
 * stored cases: the largest error is between 3e-7 and 1e-6 (16x16; bounds of 3e-7 fail, 1e-6
 * pass), so the bound 1e-5 leaves a factor 10 and still catches a formula change: in float64 a
 * coefficient off in its third decimal (2.03 for 2.0315) moves a 16x16 result by 2e-3, one step
 * fewer by 0.2.
 */
class MuonNewtonSchulzTest {
    private static final double BOUND = 1e-5;
    private static final double TRAJECTORY_BOUND = 3e-6;
    private static final String RESOURCE = "muon-reference/muon.json";

    static Stream<Arguments> newtonSchulzCases() throws IOException, Json.SyntaxException {
        Map<String, Object> document = document();
        Map<String, Object> newtonSchulz = TorchAgreementTest.object(document.get("newton_schulz"));
        return TorchAgreementTest.list(newtonSchulz.get("cases")).stream().map(TorchAgreementTest::object)
                .map(c -> Arguments.of(((Double) c.get("rows")).intValue(), ((Double) c.get("cols")).intValue(),
                        doubles(c.get("input")), doubles(c.get("output"))));
    }

    @ParameterizedTest(name = "{0}x{1}")
    @MethodSource("newtonSchulzCases")
    void exactNewtonSchulzIsWithinRoundingOfTheFloat64Reference(int rows, int cols, double[] input, double[] expected) {
        Muon defaults = Muon.builder().build();
        float[] u = new float[input.length];
        double sumOfSquares = 0;
        for (int i = 0; i < u.length; i++) {
            u[i] = (float) input[i];
            assertEquals(input[i], u[i], "the stored input is float32");
            sumOfSquares += (double) u[i] * u[i];
        }
        float[] actual = NewtonSchulz.orthogonalize(u, rows, cols, sumOfSquares, (float) defaults.a(),
                (float) defaults.b(), (float) defaults.c(), (float) defaults.eps(), defaults.nsSteps());
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            int element = i;
            assertTrue(Math.abs(actual[i] - expected[i]) <= BOUND,
                    () -> rows + "x" + cols + " element " + element + ": " + actual[element] + " vs float64 " + expected[element]);
        }
    }

    static Stream<Arguments> trajectoryCases() throws IOException, Json.SyntaxException {
        return TorchAgreementTest.list(document().get("cases")).stream().map(TorchAgreementTest::object)
                .map(c -> Arguments.of(c.get("name"), c));
    }

    /**
     * Six float32 steps through the optimizer (the CPU reference backend and CPU_FAST, the same
     * bits) against the float64 trajectory. Bound per element:
     * {@value #TRAJECTORY_BOUND}. Each step moves the parameter by lr' * O with lr' &lt;= 0.02 * 0.2 * 4
     * (the largest adjusted lr stored) and O within 1e-5 of its float64 value (above), plus two float32
     * roundings of |p| &lt; 2 (2 * 2^-24 * 2); six steps: &lt; 6 * (1.6e-2 * 1e-5 + 2.4e-7) ~ 2.4e-6.
     * The buffer is an average of float32 gradients of magnitude &lt; 1, one fma per step: 6 ulps.
     * Measured: the largest error is between 3e-8 and 3e-7 (3e-8 fails, 3e-7 passes). Decaying with
     * the adjusted lr, or the docstring's plain-sum momentum, fails this test (checked by mutation).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("trajectoryCases")
    void exactStepsFollowTheFloat64Trajectory(String name, Map<String, Object> stored) {
        Map<String, Object> torch = TorchAgreementTest.object(stored.get("torch"));
        List<Object> coefficients = TorchAgreementTest.list(torch.get("ns_coefficients"));
        Muon config = Muon.builder().optMomentum((Double) torch.get("momentum")).optNesterov((Boolean) torch.get("nesterov"))
                .optWeightDecay((Double) torch.get("weight_decay")).optEps((Double) torch.get("eps"))
                .optNsSteps(((Double) torch.get("ns_steps")).intValue())
                .optNsCoefficients((Double) coefficients.get(0), (Double) coefficients.get(1), (Double) coefficients.get(2))
                .optLrAdjustment("match_rms_adamw".equals(torch.get("adjust_lr_fn")) ? Muon.LrAdjustment.MATCH_RMS_ADAMW
                        : Muon.LrAdjustment.ORIGINAL)
                .build();
        int rows = ((Double) stored.get("rows")).intValue();
        int cols = ((Double) stored.get("cols")).intValue();
        float[] reference = null;
        for (Backend backend : new Backend[] {Backend.CPU, Backend.CPU_FAST}) {
            try (DeviceOptimizer opt = DeviceOptimizer.builder(config).optBackend(backend).build()) {
                float[] initial = floats(stored.get("initial"));
                TensorBuffer w = opt.allocate(initial.length);
                w.copyFrom(initial);
                Parameter p = opt.addGroup(config.withLearningRate((Double) torch.get("lr"))).add("w", w, opt.allocate(initial.length), rows, cols);
                List<Object> steps = TorchAgreementTest.list(stored.get("steps"));
                for (int t = 0; t < steps.size(); t++) {
                    Map<String, Object> step = TorchAgreementTest.object(steps.get(t));
                    p.grad().copyFrom(floats(step.get("grad")));
                    opt.step();
                    assertNear(name + " step " + (t + 1) + " param", doubles(step.get("param")), p.param().toArray());
                    assertNear(name + " step " + (t + 1) + " momentum_buffer", doubles(step.get("momentum_buffer")),
                            p.state(StateKind.MOMENTUM_BUFFER).toArray());
                }
                if (reference == null) reference = p.param().toArray();
                else assertArrayEquals(reference, p.param().toArray(), name + ": CPU_FAST gives the reference backend's bits");
            }
        }
    }

    private static void assertNear(String what, double[] expected, float[] actual) {
        for (int i = 0; i < expected.length; i++) {
            int element = i;
            assertTrue(Math.abs(actual[i] - expected[i]) <= TRAJECTORY_BOUND,
                    () -> what + "[" + element + "]: " + actual[element] + " vs float64 " + expected[element]);
        }
    }

    private static float[] floats(Object hex) {
        double[] values = doubles(hex);
        float[] out = new float[values.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) values[i];
            assertEquals(values[i], out[i], "a stored float32");
        }
        return out;
    }

    /** The mirrored triangle has the bits of the full product: the claim the backends may rely on. */
    @Test
    void gramAndSymmetricSquareEqualTheFullProductBitForBit() {
        Random random = new Random(30);
        int m = 7, n = 11;
        float[] x = new float[m * n];
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        float[] xt = new float[n * m];
        for (int i = 0; i < m; i++) for (int k = 0; k < n; k++) xt[k * m + i] = x[i * n + k];

        float[] gram = new float[m * m];
        float[] full = new float[m * m];
        NewtonSchulz.gramOfRows(x, m, n, gram);
        NewtonSchulz.product(x, xt, m, n, m, full);
        assertArrayEquals(full, gram);

        float[] square = new float[m * m];
        NewtonSchulz.symmetricSquare(gram, m, square);
        NewtonSchulz.product(gram, gram, m, m, m, full);
        assertArrayEquals(full, square);
    }

    @Test
    void defaultsArePyTorchs() {
        Muon muon = Muon.builder().build();
        assertEquals(new Muon(1e-3, 0.1, 0.95, true, 3.4445, -4.775, 2.0315, 1e-7, 5, Muon.LrAdjustment.ORIGINAL, Muon.Numerics.EXACT), muon);
        assertEquals(muon, muon.toBuilder().build());
        assertEquals(0.5, muon.withLearningRate(0.5).learningRate());
    }

    static Stream<Arguments> refusedValues() {
        return Stream.of(
                refused("learningRate", "-1.0", () -> Muon.builder().optLearningRate(-1).build()),
                refused("weightDecay", "NaN", () -> Muon.builder().optWeightDecay(Double.NaN).build()),
                refused("momentum", "1.0", () -> Muon.builder().optMomentum(1).build()),
                refused("a", "Infinity", () -> Muon.builder().optNsCoefficients(Double.POSITIVE_INFINITY, -4.775, 2.0315).build()),
                refused("b", "NaN", () -> Muon.builder().optNsCoefficients(3.4445, Double.NaN, 2.0315).build()),
                refused("c", "1.0E300", () -> Muon.builder().optNsCoefficients(3.4445, -4.775, 1e300).build()),
                refused("eps", "0.0", () -> Muon.builder().optEps(0).build()),
                refused("nsSteps", "100", () -> Muon.builder().optNsSteps(100).build()),
                refused("nsSteps", "-1", () -> Muon.builder().optNsSteps(-1).build()),
                refused("lrAdjustment", "null", () -> Muon.builder().optLrAdjustment(null).build()));
    }

    private static Arguments refused(String name, String value, Supplier<Muon> build) {
        return Arguments.of(name, value, build);
    }

    @ParameterizedTest(name = "{0} = {1}")
    @MethodSource("refusedValues")
    void badValuesAreRefusedNamingTheValue(String name, String value, Supplier<Muon> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().startsWith(name + " ") && e.getMessage().contains(value), e.getMessage());
    }

    private static Map<String, Object> document() throws IOException, Json.SyntaxException {
        String text;
        try (InputStream in = MuonNewtonSchulzTest.class.getResourceAsStream(RESOURCE)) {
            assertNotNull(in, RESOURCE);
            text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        Json.Reader reader = new Json.Reader(text, 16, 100, 1000);
        Map<String, Object> document = TorchAgreementTest.object(TorchAgreementTest.read(reader));
        reader.end();
        assertEquals("fusedopt muon-reference 1", document.get("format"), RESOURCE);
        return document;
    }

    /** Float32 (8 hex digits) or float64 (16) bits, as doubles. */
    private static double[] doubles(Object value) {
        List<Object> hex = TorchAgreementTest.list(value);
        double[] out = new double[hex.size()];
        for (int i = 0; i < out.length; i++) {
            String bits = (String) hex.get(i);
            out[i] = bits.length() == 8 ? Float.intBitsToFloat(Integer.parseUnsignedInt(bits, 16))
                    : Double.longBitsToDouble(Long.parseUnsignedLong(bits, 16));
        }
        return out;
    }
}
