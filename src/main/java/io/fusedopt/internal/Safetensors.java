package io.fusedopt.internal;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import io.fusedopt.CheckpointException;
import io.fusedopt.Precision;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32C;

/**
 * The safetensors layout (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON (padded with spaces to a multiple of 8), then the raw
 * little-endian tensor data. The header maps each tensor name to its dtype, shape and
 * {@code data_offsets} within the data, and {@code __metadata__} holds string pairs.
 *
 * <p>Ours adds one metadata entry, {@value #HEADER_CRC_KEY}: the CRC32C of the header bytes with
 * its own 8 hex digits replaced by {@code 0}s, so that a flipped bit anywhere in the header is
 * detected (tensor data carry their own CRC32C in the metadata). Parsing checks everything a
 * reader can check without knowing what the tensors mean; it never trusts a size it has not
 * bounded by the file's length.
 */
public final class Safetensors {
    private Safetensors() {}

    public static final String HEADER_CRC_KEY = "header_crc32c";
    /** Headers larger than this are refused as absurd (safetensors itself uses 100 MB). */
    public static final long MAX_HEADER_BYTES = 100L << 20;
    private static final String PLACEHOLDER = "00000000";
    private static final JsonFactory JSON = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(8).maxStringLength(1 << 20).build())
            .build();

    /** One tensor: one-dimensional, {@code length} elements of {@code dtype} at data bytes [begin, end). */
    public record Entry(String name, Precision dtype, long length, long begin, long end) {}

    /** A parsed header: metadata, entries in data order, and where the data starts in the file. */
    public record Header(Map<String, String> metadata, List<Entry> entries, long dataStart, long dataLength) {}

    /** The safetensors dtype name of a precision. */
    public static String dtypeName(Precision p) {
        return switch (p) {
            case FP32 -> "F32";
            case BF16 -> "BF16";
            case FP16 -> "F16";
        };
    }

    /** The header bytes, length prefix included, for these entries (offsets must be contiguous from 0). */
    public static byte[] encodeHeader(Map<String, String> metadata, List<Entry> entries) throws IOException {
        ByteArrayOutputStream json = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(json)) {
            g.writeStartObject();
            g.writeObjectFieldStart("__metadata__");
            for (Map.Entry<String, String> e : metadata.entrySet()) g.writeStringField(e.getKey(), e.getValue());
            g.writeStringField(HEADER_CRC_KEY, PLACEHOLDER);
            g.writeEndObject();
            for (Entry e : entries) {
                g.writeObjectFieldStart(e.name());
                g.writeStringField("dtype", dtypeName(e.dtype()));
                g.writeArrayFieldStart("shape");
                g.writeNumber(e.length());
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(e.begin());
                g.writeNumber(e.end());
                g.writeEndArray();
                g.writeEndObject();
            }
            g.writeEndObject();
        }
        byte[] body = json.toByteArray();
        int padded = (body.length + 7) / 8 * 8;
        byte[] out = new byte[8 + padded];
        java.util.Arrays.fill(out, 8 + body.length, out.length, (byte) ' ');
        System.arraycopy(body, 0, out, 8, body.length);
        long n = padded;
        for (int i = 0; i < 8; i++) out[i] = (byte) (n >>> (8 * i));
        int at = crcField(out, 8, out.length);
        String crc = String.format("%08x", headerCrc(out, at));
        System.arraycopy(crc.getBytes(StandardCharsets.US_ASCII), 0, out, at, 8);
        return out;
    }

    /**
     * Parses and checks a header. {@code prefix} holds at least the first 8 bytes of the file;
     * {@code readHeader} returns the N header bytes after them.
     *
     * @throws CheckpointException naming the problem
     */
    public static Header parse(String file, long fileSize, byte[] lengthPrefix, HeaderSource readHeader)
            throws IOException {
        if (fileSize < 8) throw new CheckpointException(file + ": truncated: " + fileSize + " bytes, not even the 8-byte header length");
        long n = 0;
        for (int i = 0; i < 8; i++) n |= (lengthPrefix[i] & 0xFFL) << (8 * i);
        if (n < 2 || n > MAX_HEADER_BYTES) {
            throw new CheckpointException(file + ": header length " + Long.toUnsignedString(n) + " is absurd (must be 2 to "
                    + MAX_HEADER_BYTES + " bytes)");
        }
        if (n > fileSize - 8) {
            throw new CheckpointException(file + ": truncated: the header claims " + n + " bytes but only " + (fileSize - 8)
                    + " follow the length");
        }
        byte[] header = readHeader.read((int) n);
        byte[] whole = new byte[8 + header.length];
        System.arraycopy(lengthPrefix, 0, whole, 0, 8);
        System.arraycopy(header, 0, whole, 8, header.length);
        int at = crcField(whole, 8, whole.length);
        if (at < 0) throw new CheckpointException(file + ": the header has no " + HEADER_CRC_KEY + " (not a fusedopt checkpoint, or damaged)");
        String stored = new String(whole, at, 8, StandardCharsets.US_ASCII);
        String actual = String.format("%08x", headerCrc(whole, at));
        if (!stored.equals(actual)) {
            throw new CheckpointException(file + ": header checksum mismatch (stored " + stored + ", computed " + actual
                    + "): the header is damaged");
        }
        long dataLength = fileSize - 8 - n;
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> entries = new ArrayList<>();
        String text;
        try {
            // Strict UTF-8, as safetensors requires: the JSON parser would otherwise guess an encoding.
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                    .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(header)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new CheckpointException(file + ": the header is not valid UTF-8", e);
        }
        try (JsonParser p = JSON.createParser(text)) {
            expect(p.nextToken() == JsonToken.START_OBJECT, file, "the header is not a JSON object");
            Set<String> names = new HashSet<>();
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                if (!names.add(name)) throw new CheckpointException(file + ": tensor '" + name + "' appears twice");
                expect(p.nextToken() == JsonToken.START_OBJECT, file, "'" + name + "' is not an object");
                if (name.equals("__metadata__")) {
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String key = p.currentName();
                        expect(p.nextToken() == JsonToken.VALUE_STRING, file, "metadata '" + key + "' is not a string");
                        if (metadata.put(key, p.getText()) != null) throw new CheckpointException(file + ": metadata '" + key + "' appears twice");
                    }
                } else {
                    entries.add(parseEntry(p, file, name, dataLength));
                }
            }
            expect(p.currentToken() == JsonToken.END_OBJECT && p.nextToken() == null, file, "trailing content after the header object");
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new CheckpointException(file + ": the header is not valid JSON: " + e.getOriginalMessage(), e);
        }
        for (int i = (int) (n - 1); i >= 0 && header[i] != '}'; i--) {
            if (header[i] != ' ') throw new CheckpointException(file + ": the header is padded with something other than spaces");
        }
        entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        for (Entry e : entries) {
            if (e.begin() != expected) {
                throw new CheckpointException(file + ": tensor '" + e.name() + "' starts at data byte " + e.begin() + " but the previous"
                        + " tensor ends at " + expected + " (overlap or hole)");
            }
            expected = e.end();
        }
        if (expected != dataLength) {
            throw new CheckpointException(file + ": " + (expected > dataLength ? "truncated: the tensors need " : "the tensors cover ")
                    + expected + " data bytes but the file holds " + dataLength);
        }
        return new Header(metadata, List.copyOf(entries), 8 + n, dataLength);
    }

    /** Reads the N header bytes after the length prefix. */
    @FunctionalInterface
    public interface HeaderSource {
        byte[] read(int n) throws IOException;
    }

    private static Entry parseEntry(JsonParser p, String file, String name, long dataLength) throws IOException {
        String dtype = null;
        long[] shape = null;
        long[] offsets = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            switch (field) {
                case "dtype" -> {
                    expect(value == JsonToken.VALUE_STRING, file, "dtype of '" + name + "' is not a string");
                    dtype = p.getText();
                }
                case "shape" -> shape = longArray(p, value, file, "shape of '" + name + "'");
                case "data_offsets" -> offsets = longArray(p, value, file, "data_offsets of '" + name + "'");
                default -> throw new CheckpointException(file + ": tensor '" + name + "' has an unknown field '" + field + "'");
            }
        }
        if (dtype == null || shape == null || offsets == null) {
            throw new CheckpointException(file + ": tensor '" + name + "' lacks dtype, shape or data_offsets");
        }
        Precision precision = switch (dtype) {
            case "F32" -> Precision.FP32;
            case "BF16" -> Precision.BF16;
            case "F16" -> Precision.FP16;
            default -> throw new CheckpointException(file + ": tensor '" + name + "' has dtype " + dtype + "; fusedopt stores F32, BF16, F16");
        };
        if (shape.length != 1) throw new CheckpointException(file + ": tensor '" + name + "' has shape of rank " + shape.length + ", not 1");
        if (offsets.length != 2) throw new CheckpointException(file + ": data_offsets of '" + name + "' must hold 2 numbers");
        long length = shape[0];
        long begin = offsets[0], end = offsets[1];
        if (length < 0 || begin < 0 || end < begin || end > dataLength) {
            throw new CheckpointException(file + ": tensor '" + name + "' claims data bytes [" + begin + ", " + end + ") of "
                    + length + " elements, but the file holds " + dataLength + " data bytes"
                    + (end > dataLength ? " (truncated, or the header claims more data than exists)" : ""));
        }
        if (length > (end - begin) / precision.bytes() || (end - begin) != length * precision.bytes()) {
            throw new CheckpointException(file + ": tensor '" + name + "' has " + length + " " + dtype + " elements but "
                    + (end - begin) + " data bytes");
        }
        return new Entry(name, precision, length, begin, end);
    }

    private static long[] longArray(JsonParser p, JsonToken start, String file, String what) throws IOException {
        expect(start == JsonToken.START_ARRAY, file, what + " is not an array");
        List<Long> values = new ArrayList<>();
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            expect(t == JsonToken.VALUE_NUMBER_INT, file, what + " holds a non-integer");
            if (p.getNumberType() != JsonParser.NumberType.INT && p.getNumberType() != JsonParser.NumberType.LONG) {
                throw new CheckpointException(file + ": " + what + " holds an absurd number " + p.getText());
            }
            values.add(p.getLongValue());
            if (values.size() > 4) throw new CheckpointException(file + ": " + what + " is too long");
        }
        return values.stream().mapToLong(Long::longValue).toArray();
    }

    private static void expect(boolean condition, String file, String problem) throws CheckpointException {
        if (!condition) throw new CheckpointException(file + ": " + problem);
    }

    /** The position of the 8 hex digits of the header checksum in {@code bytes}, or -1 (when not exactly once). */
    private static int crcField(byte[] bytes, int from, int to) {
        byte[] key = ("\"" + HEADER_CRC_KEY + "\":\"").getBytes(StandardCharsets.US_ASCII);
        int found = -1;
        outer:
        for (int i = from; i + key.length + 8 <= to; i++) {
            for (int j = 0; j < key.length; j++) if (bytes[i + j] != key[j]) continue outer;
            if (found >= 0) return -1;
            found = i + key.length;
        }
        return found;
    }

    private static long headerCrc(byte[] bytes, int crcAt) {
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, crcAt);
        crc.update(PLACEHOLDER.getBytes(StandardCharsets.US_ASCII));
        crc.update(bytes, crcAt + 8, bytes.length - crcAt - 8);
        return crc.getValue();
    }
}
