package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Json;
import io.fusedopt.internal.NewtonSchulzReference;
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
 * Work in progress (issue 30, Muon): the {@link Muon} configuration's defaults and refusals, and
 * the float32 exact-mode Newton-Schulz ({@link NewtonSchulzReference}) against the float64
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
        float[] actual = NewtonSchulzReference.orthogonalize(u, rows, cols, sumOfSquares, (float) defaults.a(),
                (float) defaults.b(), (float) defaults.c(), defaults.eps(), defaults.nsSteps());
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) {
            int element = i;
            assertTrue(Math.abs(actual[i] - expected[i]) <= BOUND,
                    () -> rows + "x" + cols + " element " + element + ": " + actual[element] + " vs float64 " + expected[element]);
        }
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
        NewtonSchulzReference.gramOfRows(x, m, n, gram);
        NewtonSchulzReference.product(x, xt, m, n, m, full);
        assertArrayEquals(full, gram);

        float[] square = new float[m * m];
        NewtonSchulzReference.symmetricSquare(gram, m, square);
        NewtonSchulzReference.product(gram, gram, m, m, m, full);
        assertArrayEquals(full, square);
    }

    @Test
    void defaultsArePyTorchs() {
        Muon muon = Muon.builder().build();
        assertEquals(new Muon(1e-3, 0.1, 0.95, true, 3.4445, -4.775, 2.0315, 1e-7, 5, Muon.LrAdjustment.ORIGINAL), muon);
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
