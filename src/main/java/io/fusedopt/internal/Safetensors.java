package io.fusedopt.internal;

import io.fusedopt.CheckpointException;
import io.fusedopt.Precision;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
    /** Limits of the header JSON (those the Jackson-based reader had): nesting, key and string lengths in chars. */
    static final int MAX_DEPTH = 8, MAX_STRING_CHARS = 1 << 20;
    /** The longest key the reader accepts, in chars; it bounds parameter names (io.fusedopt.Parameter.MAX_NAME_LENGTH). */
    public static final int MAX_NAME_CHARS = 50_000;

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
        // Compact, in this order: the bytes Jackson's generator wrote before (CheckpointFormatTest).
        Json.Writer g = new Json.Writer();
        g.beginObject();
        g.name("__metadata__").beginObject();
        for (Map.Entry<String, String> e : metadata.entrySet()) g.name(e.getKey()).value(e.getValue());
        g.name(HEADER_CRC_KEY).value(PLACEHOLDER);
        g.endObject();
        for (Entry e : entries) {
            g.name(e.name()).beginObject();
            g.name("dtype").value(dtypeName(e.dtype()));
            g.name("shape").beginArray().value(e.length()).endArray();
            g.name("data_offsets").beginArray().value(e.begin()).value(e.end()).endArray();
            g.endObject();
        }
        g.endObject();
        byte[] body = g.toUtf8();
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
        return parseHeader(file, fileSize, lengthPrefix, readHeader);
    }

    /**
     * As {@link #parse(String, long, byte[], HeaderSource)} for a source of unknown length (a
     * stream): the data length is the one the entries declare, which the caller then reads and
     * checks (a stream that ends early is truncated; one that goes on holds trailing bytes).
     * {@code readHeader} must refuse to return fewer than N bytes.
     */
    public static Header parseStreamed(String source, byte[] lengthPrefix, HeaderSource readHeader) throws IOException {
        return parseHeader(source, -1, lengthPrefix, readHeader);
    }

    /** {@code fileSize} -1: unknown (streamed). */
    private static Header parseHeader(String file, long fileSize, byte[] lengthPrefix, HeaderSource readHeader) throws IOException {
        boolean streamed = fileSize < 0;
        long n = 0;
        for (int i = 0; i < 8; i++) n |= (lengthPrefix[i] & 0xFFL) << (8 * i);
        if (n < 2 || n > MAX_HEADER_BYTES) {
            throw new CheckpointException(file + ": header length " + Long.toUnsignedString(n) + " is absurd (must be 2 to "
                    + MAX_HEADER_BYTES + " bytes)");
        }
        if (!streamed && n > fileSize - 8) {
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
        // Streamed, the entries declare the data length; bounded only so that offsets stay within a long.
        long dataLength = streamed ? Long.MAX_VALUE - 8 - n : fileSize - 8 - n;
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
        Json.Reader p = new Json.Reader(text, MAX_DEPTH, MAX_NAME_CHARS, MAX_STRING_CHARS);
        try {
            expect(p.peek() == Json.Kind.OBJECT, file, "the header is not a JSON object");
            p.beginObject();
            while (p.hasNext()) {
                String name = p.nextName(); // the reader refuses a name seen twice
                expect(p.peek() == Json.Kind.OBJECT, file, "'" + name + "' is not an object");
                p.beginObject();
                if (name.equals("__metadata__")) {
                    while (p.hasNext()) {
                        String key = p.nextName();
                        expect(p.peek() == Json.Kind.STRING, file, "metadata '" + key + "' is not a string");
                        metadata.put(key, p.nextString());
                    }
                } else {
                    entries.add(parseEntry(p, file, name, dataLength));
                }
            }
            p.end();
        } catch (Json.SyntaxException e) {
            throw new CheckpointException(file + ": the header is not valid JSON: " + e.getMessage(), e);
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
        if (streamed) dataLength = expected;
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

    private static Entry parseEntry(Json.Reader p, String file, String name, long dataLength)
            throws CheckpointException, Json.SyntaxException {
        String dtype = null;
        long[] shape = null;
        long[] offsets = null;
        while (p.hasNext()) {
            String field = p.nextName();
            switch (field) {
                case "dtype" -> {
                    expect(p.peek() == Json.Kind.STRING, file, "dtype of '" + name + "' is not a string");
                    dtype = p.nextString();
                }
                case "shape" -> shape = longArray(p, file, "shape of '" + name + "'");
                case "data_offsets" -> offsets = longArray(p, file, "data_offsets of '" + name + "'");
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

    /** At most 4 non-negative integers, each within a long. */
    private static long[] longArray(Json.Reader p, String file, String what) throws CheckpointException, Json.SyntaxException {
        expect(p.peek() == Json.Kind.ARRAY, file, what + " is not an array");
        p.beginArray();
        long[] values = new long[4];
        int n = 0;
        while (p.hasNext()) {
            if (n == values.length) throw new CheckpointException(file + ": " + what + " is too long");
            expect(p.peek() == Json.Kind.NUMBER, file, what + " holds a non-integer");
            try {
                values[n++] = p.nextNonNegativeLong();
            } catch (Json.SyntaxException e) {
                throw new CheckpointException(file + ": " + what + " holds an absurd number: " + e.getMessage(), e);
            }
        }
        return java.util.Arrays.copyOf(values, n);
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
