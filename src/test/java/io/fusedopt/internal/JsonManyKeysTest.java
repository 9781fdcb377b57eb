package io.fusedopt.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.CheckpointException;
import io.fusedopt.Precision;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Objects of many keys, as checkpoint headers of many tensors have: the reader's table of keys
 * seen (beyond the first eight) and the header's metadata table refuse every repeated key, also
 * among keys whose hash codes are equal, and accept distinct ones; the metadata reads back in file
 * order and finds every key, also by position and compared in place, with escapes or without.
 */
class JsonManyKeysTest {
    /** 600 distinct keys, among them pairs with equal String hash codes ("Aa" and "BB" hash alike). */
    static List<String> keys() {
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            keys.add("k" + i + "Aa");
            keys.add("k" + i + "BB");
        }
        assertEquals(keys.get(0).hashCode(), keys.get(1).hashCode(), "the pairs collide");
        return keys;
    }

    static String object(List<String> keys) {
        StringBuilder b = new StringBuilder("{");
        for (int i = 0; i < keys.size(); i++) b.append(i > 0 ? "," : "").append('"').append(keys.get(i)).append("\":").append(i);
        return b.append('}').toString();
    }

    static void readObject(String text) throws Json.SyntaxException {
        Json.Reader r = new Json.Reader(text, 2, 100, 100);
        r.beginObject();
        while (r.hasNext()) {
            r.nextName();
            r.nextNonNegativeLong();
        }
        r.end();
    }

    @Test
    void everyRepeatedKeyIsRefusedAndDistinctKeysWithEqualHashesAreNot() throws Json.SyntaxException {
        List<String> keys = keys();
        readObject(object(keys));
        for (int repeated : new int[] {0, 1, 7, 8, 9, 31, 32, 33, 299, 599}) {
            List<String> withRepeat = new ArrayList<>(keys);
            withRepeat.add(keys.get(repeated));
            Json.SyntaxException e = assertThrows(Json.SyntaxException.class, () -> readObject(object(withRepeat)));
            assertTrue(e.getMessage().contains("\"" + keys.get(repeated) + "\" appears twice"), e.getMessage());
            // the repeat right after the first, inside the first eight, and before the table grows
            List<String> early = new ArrayList<>(keys.subList(0, repeated + 1));
            early.add(keys.get(repeated));
            assertThrows(Json.SyntaxException.class, () -> readObject(object(early)), "repeat of key " + repeated);
        }
    }

    /** A header whose metadata holds the given pairs and one 1-element tensor. */
    static byte[] header(Map<String, String> metadata) throws java.io.IOException {
        return Safetensors.encodeHeader(metadata, List.of(new Safetensors.Entry("t", Precision.FP32, 1, 0, 4)));
    }

    static Safetensors.Header parse(byte[] header) throws java.io.IOException {
        byte[] file = java.util.Arrays.copyOf(header, header.length + 4);
        return Safetensors.parse("h", file.length, file, n -> java.util.Arrays.copyOfRange(file, 8, 8 + n));
    }

    @Test
    void metadataOfManyPairsReadsBackInOrderAndFindsEveryKey() throws java.io.IOException {
        Map<String, String> written = new LinkedHashMap<>();
        for (String k : keys()) written.put(k, "v" + k);
        Map<String, String> read = parse(header(written)).metadata();
        List<String> order = new ArrayList<>(read.keySet());
        assertEquals(new ArrayList<>(written.keySet()), order.subList(0, written.size()), "file order");
        assertEquals(Safetensors.HEADER_CRC_KEY, order.get(order.size() - 1));
        for (Map.Entry<String, String> e : written.entrySet()) {
            assertEquals(e.getValue(), read.get(e.getKey()), e.getKey());
            assertTrue(read.containsKey(e.getKey()));
        }
        assertNull(read.get("k0Ab"));
        assertFalse(read.containsKey("k300Aa"));
        assertFalse(read.containsKey(42));
        assertEquals(written.size() + 1, read.size());
        assertThrows(UnsupportedOperationException.class, () -> read.put("x", "y"), "read-only");
    }

    /**
     * The metadata keeps keys and values as spans of the header's text, or unescaped where they
     * held an escape: by position, compared in place and looked up, both kinds read as written.
     */
    @Test
    void metadataReadsByPositionAndComparesInPlaceWithAndWithoutEscapes() throws java.io.IOException {
        Map<String, String> written = new LinkedHashMap<>();
        written.put("crc32c.w/param", Safetensors.crcHex(0x1234abcdL));
        written.put("crc32c.q\"/param", Safetensors.crcHex(0xfedcba98L)); // an escaped key
        written.put("group_of.w/param", "1");
        written.put("note", "tab\there"); // an escaped value
        Safetensors.Metadata read = parse(header(written)).metadata();
        List<String> keys = new ArrayList<>(written.keySet());
        for (int i = 0; i < keys.size(); i++) {
            assertEquals(keys.get(i), read.keyAt(i));
            assertEquals(written.get(keys.get(i)), read.valueAt(i));
            assertEquals(i, read.indexOf(keys.get(i)));
            assertTrue(read.valueIs(i, written.get(keys.get(i))));
            assertFalse(read.valueIs(i, written.get(keys.get(i)) + "x"));
        }
        assertTrue(read.keyIs(0, "crc32c.", "w/param"));
        assertFalse(read.keyIs(0, "crc32c.", "w/para"));
        assertFalse(read.keyIs(0, "group_of.", "w/param"));
        assertTrue(read.keyIs(1, "crc32c.", "q\"/param"));
        assertTrue(read.keyStartsWith(1, "crc32c.q\""));
        assertFalse(read.keyStartsWith(2, "crc32c."));
        assertTrue(read.valueIsCrcHex(0, 0x1234abcdL));
        assertFalse(read.valueIsCrcHex(0, 0x1234abceL));
        assertTrue(read.valueIsCrcHex(1, 0xfedcba98L));
        assertFalse(read.valueIsCrcHex(2, 1L), "a value of another length");
        assertEquals(-1, read.indexOf("crc32c.q/param"));
    }

    @Test
    void aRepeatedMetadataKeyAmongManyIsRefused() throws java.io.IOException {
        Map<String, String> written = new LinkedHashMap<>();
        for (String k : keys()) written.put(k, "v");
        String text = new String(header(written), 8, header(written).length - 8, java.nio.charset.StandardCharsets.UTF_8).trim();
        // Repeat the last pair before the checksum; the checksum is then recomputed by re-encoding
        // around it, so the refusal is the repeat's, not the checksum's.
        String repeated = text.replace(",\"" + Safetensors.HEADER_CRC_KEY, ",\"k150BB\":\"w\",\"" + Safetensors.HEADER_CRC_KEY);
        byte[] bytes = withLengthAndChecksum(repeated);
        CheckpointException e = assertThrows(CheckpointException.class, () -> parse(bytes));
        assertTrue(e.getMessage().contains("\"k150BB\" appears twice"), e.getMessage());
    }

    /** The 8-byte length, the text padded to 8 bytes, and a correct header checksum. */
    static byte[] withLengthAndChecksum(String text) {
        byte[] body = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int padded = (body.length + 7) / 8 * 8;
        byte[] out = new byte[8 + padded];
        java.util.Arrays.fill(out, 8 + body.length, out.length, (byte) ' ');
        System.arraycopy(body, 0, out, 8, body.length);
        for (int i = 0; i < 8; i++) out[i] = (byte) ((long) padded >>> (8 * i));
        String key = "\"" + Safetensors.HEADER_CRC_KEY + "\":\"";
        int at = 8 + text.indexOf(key) + key.length();
        System.arraycopy("00000000".getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, out, at, 8);
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(out);
        System.arraycopy(Safetensors.crcHex(crc.getValue()).getBytes(java.nio.charset.StandardCharsets.US_ASCII), 0, out, at, 8);
        return out;
    }
}
