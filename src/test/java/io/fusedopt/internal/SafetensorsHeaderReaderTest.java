package io.fusedopt.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.fusedopt.CheckpointException;
import io.fusedopt.Precision;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

/**
 * The header JSON of checkpoints, written and read by fusedopt's own code ({@link Json}, no
 * library): valid headers, the exact bytes written, and every kind of malformed header, each of
 * which must be a {@link CheckpointException} (never another exception type).
 */
class SafetensorsHeaderReaderTest {
    /** An 'a' tensor of 3 F32 elements: 12 data bytes. */
    static final String A = "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}";
    static final String META = "\"__metadata__\":{\"format\":\"x\",\"header_crc32c\":\"00000000\"}";

    /** The file bytes up to the data: length prefix and {@code json} padded with spaces, its checksum filled in. */
    static byte[] header(byte[] json) {
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = new byte[8 + padded];
        Arrays.fill(out, (byte) ' ');
        System.arraycopy(json, 0, out, 8, json.length);
        for (int i = 0; i < 8; i++) out[i] = (byte) ((long) padded >>> (8 * i));
        byte[] key = "\"header_crc32c\":\"00000000\"".getBytes(StandardCharsets.US_ASCII);
        int at = indexOf(out, key);
        if (at >= 0) {
            CRC32C crc = new CRC32C();
            crc.update(out);
            byte[] hex = String.format("%08x", crc.getValue()).getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(hex, 0, out, at + key.length - 9, 8);
        }
        return out;
    }

    static byte[] header(String json) {
        return header(json.getBytes(StandardCharsets.UTF_8));
    }

    static int indexOf(byte[] bytes, byte[] key) {
        outer:
        for (int i = 0; i + key.length <= bytes.length; i++) {
            for (int j = 0; j < key.length; j++) if (bytes[i + j] != key[j]) continue outer;
            return i;
        }
        return -1;
    }

    static Safetensors.Header parse(byte[] header, long dataLength) throws IOException {
        long n = header.length - 8;
        return Safetensors.parse("f", 8 + n + dataLength, Arrays.copyOf(header, 8), k -> {
            if (k != n) throw new AssertionError(k + " != " + n);
            return Arrays.copyOfRange(header, 8, header.length);
        });
    }

    static Safetensors.Header parse(String json, long dataLength) throws IOException {
        return parse(header(json), dataLength);
    }

    /** Must fail with a CheckpointException whose message holds {@code fragment}. */
    static void refused(String json, String fragment) {
        refused(header(json), 12, fragment);
    }

    static void refused(byte[] header, long dataLength, String fragment) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> parse(header, dataLength),
                () -> "accepted " + new String(header, StandardCharsets.UTF_8));
        assertTrue(e.getMessage().contains(fragment), () -> "'" + e.getMessage() + "' does not say '" + fragment + "'");
    }

    // ---- valid headers ----

    @Test
    void writesTheExactCompactLayout() throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "fusedopt-optimizer-state");
        meta.put("q\"\\\t\u0001\u00e9\ud83d\ude00", "v");
        byte[] bytes = Safetensors.encodeHeader(meta, List.of(new Safetensors.Entry("w/param", Precision.BF16, 3, 0, 6)));
        String text = new String(bytes, 8, bytes.length - 8, StandardCharsets.UTF_8);
        String expected = "{\"__metadata__\":{\"format\":\"fusedopt-optimizer-state\",\"q\\\"\\\\\\t\\u0001\u00e9\\uD83D\\uDE00\":\"v\","
                + "\"header_crc32c\":\"";
        assertTrue(text.startsWith(expected), text);
        assertTrue(text.matches(".*\"header_crc32c\":\"[0-9a-f]{8}\"},\"w/param\":\\{\"dtype\":\"BF16\",\"shape\":\\[3],"
                + "\"data_offsets\":\\[0,6]}} *"), text);
        assertEquals(0, (bytes.length - 8) % 8);
        assertEquals(bytes.length - 8, (int) (bytes[0] & 0xFF | (bytes[1] & 0xFF) << 8));
    }

    @Test
    void whatIsWrittenIsReadBack() throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "fusedopt-optimizer-state");
        meta.put("ctl \u0000\u001f\b\f\n\r\t\u007f \\ \" /", "\u4e2d\ud834\udd1e lone \ud800");
        meta.put("", "");
        List<Safetensors.Entry> entries = List.of(new Safetensors.Entry("a \u2028\"\\", Precision.FP32, 3, 0, 12),
                new Safetensors.Entry("b\ud83d\ude00\udc00", Precision.FP16, 1, 12, 14),
                new Safetensors.Entry("c", Precision.BF16, 0, 14, 14));
        Safetensors.Header h = parse(Safetensors.encodeHeader(meta, entries), 14);
        Map<String, String> read = new LinkedHashMap<>(h.metadata());
        assertTrue(read.remove(Safetensors.HEADER_CRC_KEY).matches("[0-9a-f]{8}"));
        assertEquals(meta, read);
        assertEquals(entries, h.entries());
        assertEquals(14, h.dataLength());
    }

    @Test
    void acceptsWhiteSpaceEscapesAnyFieldOrderAndEmptyMetadata() throws IOException {
        Safetensors.Header h = parse(" {\n\t\"__metadata__\" : { \"k\\u00E9\\u00e9\\/\" : \"v\" , \"header_crc32c\":\"00000000\" } ,\r\n"
                + " \"a\" : { \"data_offsets\" : [ 0 , 12 ] , \"shape\" : [ 3 ] , \"dtype\" : \"F32\" } } ", 12);
        assertEquals("v", h.metadata().get("k\u00e9\u00e9/"));
        assertEquals(List.of(new Safetensors.Entry("a", Precision.FP32, 3, 0, 12)), h.entries());
        Safetensors.Header empty = parse("{\"__metadata__\":{\"header_crc32c\":\"00000000\"}}", 0);
        assertEquals(List.of(), empty.entries());
    }

    // ---- malformed headers: encoding ----

    @Test
    void refusesMalformedUtf8() {
        byte[][] bad = {{(byte) 0xC3, 0x28}, {(byte) 0xC0, (byte) 0xAF}, {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
            {(byte) 0xF8, (byte) 0x88, (byte) 0x80, (byte) 0x80, (byte) 0x80}, {(byte) 0xFF}, {(byte) 0xE4, (byte) 0xB8}};
        for (byte[] b : bad) {
            ByteArrayOutputStream json = new ByteArrayOutputStream();
            json.writeBytes(("{" + META.replace("\"x\"", "\"x")).getBytes(StandardCharsets.UTF_8));
            json.writeBytes(b);
            json.writeBytes(("\"}," + A + "}").getBytes(StandardCharsets.UTF_8));
            refused(header(json.toByteArray()), 12, "not valid UTF-8");
        }
        refused(header(("\ufeff{" + META + "," + A + "}").getBytes(StandardCharsets.UTF_8)), 12, "unexpected U+FEFF");
    }

    // ---- malformed headers: structure and shapes ----

    @Test
    void refusesWrongShapes() {
        refused("[" + META + "]", "not a JSON object");
        refused("\"" + META.replace("\"", "'") + "\" \"header_crc32c\":\"00000000\"", "not a JSON object");
        refused("{" + META + ",\"a\":[1]}", "'a' is not an object");
        refused("{" + META + ",\"a\":\"F32\"}", "'a' is not an object");
        refused("{\"__metadata__\":{\"n\":1,\"header_crc32c\":\"00000000\"}," + A + "}", "metadata 'n' is not a string");
        refused("{\"__metadata__\":{\"n\":{},\"header_crc32c\":\"00000000\"}," + A + "}", "metadata 'n' is not a string");
        refused("{\"__metadata__\":{\"n\":null,\"header_crc32c\":\"00000000\"}," + A + "}", "metadata 'n' is not a string");
        refused("{" + META + "," + A.replace("\"F32\"", "32") + "}", "dtype of 'a' is not a string");
        refused("{" + META + "," + A.replace("\"F32\"", "\"F64\"") + "}", "has dtype F64");
        refused("{" + META + "," + A.replace("[3]", "3") + "}", "shape of 'a' is not an array");
        refused("{" + META + "," + A.replace("[3]", "{}") + "}", "shape of 'a' is not an array");
        refused("{" + META + "," + A.replace("[3]", "[\"3\"]") + "}", "holds a non-integer");
        refused("{" + META + "," + A.replace("[3]", "[[3]]") + "}", "holds a non-integer");
        refused("{" + META + "," + A.replace("[3]", "[true]") + "}", "holds a non-integer");
        refused("{" + META + "," + A.replace("[3]", "[3,2]") + "}", "has 6 F32 elements but 12 data bytes"); // shapes of rank 2 to 4: ShapesTest
        refused("{" + META + "," + A.replace("[3]", "[4294967296,4294967296,2]") + "}", "whose element count is not a long");
        refused("{" + META + "," + A.replace("[3]", "[1,1,1,1,1]") + "}", "too long");
        refused("{" + META + "," + A.replace("[0,12]", "[12]") + "}", "must hold 2 numbers");
        refused("{" + META + "," + A.replace(",\"shape\":[3]", "") + "}", "lacks dtype, shape or data_offsets");
        refused("{" + META + "," + A.replace("}", ",\"extra\":1}") + "}", "unknown field 'extra'");
        refused("{" + META + "," + A + ",\"b\":{}}", "'b' lacks dtype");
    }

    @Test
    void refusesDuplicateKeysAtEveryLevel() {
        refused("{" + META + "," + A + "," + A + "}", "\"a\" appears twice");
        refused("{" + META + ",\"__metadata__\":{}," + A + "}", "\"__metadata__\" appears twice");
        refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\",\"header_crc32c\":\"00000000\"}," + A + "}", "\"k\" appears twice");
        refused("{" + META + "," + A.replace("{\"dtype\":\"F32\"", "{\"dtype\":\"F32\",\"dtype\":\"F32\"") + "}",
                "\"dtype\" appears twice");
        refused("{" + META + "," + A.replace("\"shape\":[3]", "\"shape\":[3],\"shape\":[3]") + "}", "\"shape\" appears twice");
    }

    @Test
    void refusesNumbersThatAreNotNonNegativeLongs() {
        refused("{" + META + "," + A.replace("[3]", "[-3]") + "}", "negative");
        refused("{" + META + "," + A.replace("[3]", "[-0]") + "}", "negative");
        refused("{" + META + "," + A.replace("[3]", "[3.0]") + "}", "fraction or an exponent");
        refused("{" + META + "," + A.replace("[3]", "[3e0]") + "}", "fraction or an exponent");
        refused("{" + META + "," + A.replace("[3]", "[3E0]") + "}", "fraction or an exponent");
        refused("{" + META + "," + A.replace("[3]", "[03]") + "}", "leading zero");
        refused("{" + META + "," + A.replace("[3]", "[00]") + "}", "leading zero");
        refused("{" + META + "," + A.replace("[3]", "[9223372036854775808]") + "}", "overflows");
        refused("{" + META + "," + A.replace("[3]", "[99999999999999999999999999]") + "}", "overflows");
        refused("{" + META + "," + A.replace("[3]", "[+3]") + "}", "unexpected '+'");
        refused("{" + META + "," + A.replace("[3]", "[NaN]") + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("[3]", "[Infinity]") + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("[3]", "[0x3]") + "}", "not valid JSON");
        // The largest long is syntactically fine; the sizes refuse it.
        refused("{" + META + "," + A.replace("[3]", "[9223372036854775807]") + "}", "elements but");
        refused("{" + META + "," + A.replace("[0,12]", "[0,9223372036854775807]") + "}", "truncated");
    }

    @Test
    void refusesJsonSyntaxErrors() {
        refused("{" + META + "," + A + ",}", "not valid JSON");
        refused("{" + META + "," + A.replace("[0,12]", "[0,12,]") + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("[0,12]", "[0 12]") + "}", "not valid JSON");
        refused("{" + META + " " + A + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("\"dtype\":", "\"dtype\"") + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("\"dtype\":", "'dtype':") + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("\"dtype\":", "dtype:") + "}", "not valid JSON");
        refused("{" + META + ",/* c */" + A + "}", "not valid JSON");
        refused("{" + META + ",// c\n" + A + "}", "not valid JSON");
        refused("{" + META + "," + A.replace("\"a\"", "\"a\tb\"") + "}", "unescaped control character");
        refused("{" + META + "," + A.replace("\"a\"", "\"a\u0000\"") + "}", "unescaped control character");
        refused("{" + META + "," + A.replace("\"a\"", "\"a\\x\"") + "}", "invalid escape");
        refused("{" + META + "," + A.replace("\"a\"", "\"a\\u12G4\"") + "}", "invalid \\u escape");
        refused("{" + META + "," + A.replace("\"a\"", "\"a\\u\uff11234\"") + "}", "invalid \\u escape");
        refused("{" + META + "," + A.replace("\"a\"", "\"a\\u12\"") + "}", "invalid \\u escape");
        refused("{" + META + "," + A + "} x", "trailing content");
        refused("{" + META + "," + A + "}{}", "trailing content");
        refused("{" + META + "," + A + "}\n", "padded with something other than spaces");
        refused("{" + META + "," + A, "not valid JSON");
        refused("{" + META + ",\"a", "not valid JSON");
        refused("{" + META + ",\"a\":", "not valid JSON");
        refused("{" + META + "," + A.replace("\"F32\"", "\"F32") + "}", "not valid JSON");
        refused("{" + META + "," + A.replace(",\"shape\":[3]", ",\"shape\":[3") + "}", "holds a non-integer");
        refused("{" + META + "," + A.replace("[0,12]", "[0,12") + "}", "not valid JSON");
        refused("{\"header_crc32c\":\"00000000\"}", "not an object");
        refused("{\"__metadata__\":{\"header_crc32c\":\"00000000\"}} \"header_crc32c\":\"00000000\"", "no header_crc32c");
        refused(" \"header_crc32c\":\"00000000\" ", "not a JSON object");
    }

    @Test
    void refusesOverlongKeysAndStrings() {
        String longKey = "k".repeat(Safetensors.MAX_NAME_CHARS + 1);
        refused("{\"__metadata__\":{\"" + longKey + "\":\"v\",\"header_crc32c\":\"00000000\"}}", "key longer than 50000");
        String longValue = "\\u0076".repeat(Safetensors.MAX_STRING_CHARS + 1);
        refused("{\"__metadata__\":{\"k\":\"" + longValue + "\",\"header_crc32c\":\"00000000\"}}", "string longer than");
        String okKey = "k".repeat(Safetensors.MAX_NAME_CHARS);
        try {
            assertEquals("v", parse("{\"__metadata__\":{\"" + okKey + "\":\"v\",\"header_crc32c\":\"00000000\"}}", 0)
                    .metadata().get(okKey));
        } catch (IOException e) {
            fail(e);
        }
    }

    /** Random damage to a valid header: a CheckpointException or a parse, nothing else. */
    @Test
    void randomDamageIsACheckpointExceptionOrNothing() throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "fusedopt-optimizer-state");
        meta.put("name \u00e9\ud83d\ude00\u0001", "v\\\"");
        byte[] valid = Safetensors.encodeHeader(meta, List.of(new Safetensors.Entry("a", Precision.FP32, 3, 0, 12),
                new Safetensors.Entry("b", Precision.BF16, 2, 12, 16)));
        byte[] alphabet = "{}[]\":,\\/ -+.0123456789eEtrufalsn\t\n\r\u0001ab".getBytes(StandardCharsets.UTF_8);
        Random random = new Random(1);
        for (int trial = 0; trial < 20_000; trial++) {
            byte[] json = Arrays.copyOfRange(valid, 8, valid.length);
            int edits = 1 + random.nextInt(3);
            for (int e = 0; e < edits; e++) {
                int at = random.nextInt(json.length);
                switch (random.nextInt(4)) {
                    case 0 -> json[at] = alphabet[random.nextInt(alphabet.length)];
                    case 1 -> json[at] = (byte) random.nextInt(256);
                    case 2 -> json = Arrays.copyOf(json, at + 1);
                    default -> {
                        byte[] longer = new byte[json.length + 1];
                        System.arraycopy(json, 0, longer, 0, at);
                        longer[at] = alphabet[random.nextInt(alphabet.length)];
                        System.arraycopy(json, at, longer, at + 1, json.length - at);
                        json = longer;
                    }
                }
            }
            // Re-zero a damaged checksum so that the JSON itself is what gets checked.
            String text = new String(json, StandardCharsets.ISO_8859_1).replaceAll("(\"header_crc32c\":\")[0-9a-f]{8}", "$100000000");
            byte[] h = header(text.getBytes(StandardCharsets.ISO_8859_1));
            try {
                parse(h, 16);
            } catch (CheckpointException expected) {
                // fine
            } catch (RuntimeException | IOException | Error other) {
                throw new AssertionError("input " + new String(json, StandardCharsets.ISO_8859_1), other);
            }
        }
    }

    // ---- Json itself ----

    @Test
    void escapesAsJacksonDid() {
        StringBuilder b = new StringBuilder();
        Json.quote(b, "\"\\/\b\f\n\r\t\u0000\u001f\u007f\u0080\u00e9\u2028\ufeff\uffff\ud800\udfff\ud83d\ude00");
        assertEquals("\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001F\u007f\u0080\u00e9\u2028\ufeff\uffff\\uD800\\uDFFF\\uD83D\\uDE00\"",
                b.toString());
    }

    @Test
    void readerLimitsDepthAndReadsNumbers() throws Json.SyntaxException {
        Json.Reader deep = new Json.Reader("[[[1]]]", 2, 10, 10);
        deep.beginArray();
        assertTrue(deep.hasNext());
        deep.beginArray();
        assertTrue(deep.hasNext());
        Json.SyntaxException e = assertThrows(Json.SyntaxException.class, deep::beginArray);
        assertTrue(e.getMessage().contains("deeper than 2"), e.getMessage());

        Json.Reader numbers = new Json.Reader("[0, -0.5, 1e3, 2.5E-2, 12345678901234567890]", 1, 10, 10);
        numbers.beginArray();
        double[] expected = {0, -0.5, 1e3, 2.5e-2, 12345678901234567890d};
        for (double x : expected) {
            assertTrue(numbers.hasNext());
            assertEquals(x, numbers.nextDouble());
        }
        assertTrue(!numbers.hasNext());
        numbers.end();
        for (String bad : List.of("[-]", "[1.]", "[.5]", "[1e]", "[01]", "[1e+]", "[-a]")) {
            Json.Reader r = new Json.Reader(bad, 1, 10, 10);
            assertThrows(Json.SyntaxException.class, () -> {
                r.beginArray();
                while (r.hasNext()) r.nextDouble();
                r.end();
            }, bad);
        }
    }

    @Test
    void readerReadsBooleansAndRefusesOtherLiterals() throws Json.SyntaxException {
        Json.Reader booleans = new Json.Reader("[true, false]", 1, 10, 10);
        booleans.beginArray();
        assertTrue(booleans.hasNext());
        assertTrue(booleans.nextBoolean());
        assertTrue(booleans.hasNext());
        assertEquals(false, booleans.nextBoolean());
        assertTrue(!booleans.hasNext());
        booleans.end();
        for (String bad : List.of("[tru]", "[fals]", "[truex]", "[1]", "[\"true\"]", "[null]")) {
            Json.Reader r = new Json.Reader(bad, 1, 10, 10);
            assertThrows(Json.SyntaxException.class, () -> {
                r.beginArray();
                while (r.hasNext()) r.nextBoolean();
                r.end();
            }, bad);
        }
    }

    @Test
    void prettyWriterOutputReadsBack() throws Json.SyntaxException {
        Json.Writer w = new Json.Writer(true);
        w.beginArray().beginObject().name("s").value("x\"y").name("n").value(-5L).name("d").value(0.25)
                .name("nan").value(Double.NaN).name("e").beginArray().endArray().endObject().beginObject().endObject().endArray();
        String text = w.toString();
        assertEquals("[\n  {\n    \"s\": \"x\\\"y\",\n    \"n\": -5,\n    \"d\": 0.25,\n    \"nan\": \"NaN\",\n    \"e\": []\n  },\n"
                + "  {}\n]", text);
        Json.Reader r = new Json.Reader(text, 3, 10, 10);
        r.beginArray();
        assertTrue(r.hasNext());
        r.beginObject();
        assertTrue(r.hasNext());
        assertEquals("s", r.nextName());
        assertEquals("x\"y", r.nextString());
        assertTrue(r.hasNext());
        assertEquals("n", r.nextName());
        assertEquals(-5, r.nextDouble());
        assertThrows(IllegalStateException.class, () -> new Json.Writer().beginObject().value("no name"));
        assertThrows(IllegalStateException.class, () -> new Json.Writer().beginArray().toString());
    }
}
