package io.fusedopt.internal;

import io.fusedopt.CheckpointException;
import io.fusedopt.Precision;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
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

    /**
     * The element types a fusedopt checkpoint holds, named as safetensors names them: the three
     * float formats of {@link Precision}, and U8 for the codes of 8-bit blockwise states.
     */
    public enum Dtype {
        F32(Precision.FP32), BF16(Precision.BF16), F16(Precision.FP16), U8(null);

        private final Precision precision;

        Dtype(Precision precision) {
            this.precision = precision;
        }

        /** The float format of this type; null for {@link #U8}. */
        public Precision precision() {
            return precision;
        }

        /** Bytes per element. */
        public int bytes() {
            return precision == null ? 1 : precision.bytes();
        }

        /** The type of a float format. */
        public static Dtype of(Precision p) {
            return switch (p) {
                case FP32 -> F32;
                case BF16 -> BF16;
                case FP16 -> F16;
            };
        }
    }

    /** The most dimensions a tensor of a fusedopt checkpoint has. */
    public static final int MAX_RANK = 4;

    /**
     * One tensor: {@code length} elements of {@code dtype} at data bytes [begin, end), of shape
     * {@code dims}, or one-dimensional ({@code [length]}) where {@code dims} is null: the usual case
     * keeps no array of its own.
     */
    public record Entry(String name, Dtype dtype, long length, long begin, long end, long[] dims) {
        /** A one-dimensional tensor. */
        public Entry(String name, Dtype dtype, long length, long begin, long end) {
            this(name, dtype, length, begin, end, null);
        }

        /** A one-dimensional tensor of a float format. */
        public Entry(String name, Precision precision, long length, long begin, long end) {
            this(name, Dtype.of(precision), length, begin, end, null);
        }

        /** Its shape (a copy). */
        public long[] shape() {
            return dims == null ? new long[] {length} : dims.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Entry e && name.equals(e.name) && dtype == e.dtype && length == e.length && begin == e.begin
                    && end == e.end && java.util.Arrays.equals(shape(), e.shape());
        }

        @Override
        public int hashCode() {
            return java.util.Objects.hash(name, dtype, length, begin, end, java.util.Arrays.hashCode(shape()));
        }
    }

    /** A parsed header: metadata, entries in data order, and where the data starts in the file. */
    public record Header(Metadata metadata, List<Entry> entries, long dataStart, long dataLength) {}

    /** A CRC32C as the checkpoint writes it: 8 lower-case hex digits ({@code String.format("%08x", crc)}, without its cost). */
    public static String crcHex(long crc) {
        byte[] digits = new byte[8];
        for (int i = 7; i >= 0; i--, crc >>>= 4) digits[i] = (byte) Character.forDigit((int) (crc & 15), 16);
        return new String(digits, StandardCharsets.ISO_8859_1);
    }

    /** Whether {@code text[from, to)} is {@link #crcHex}{@code (crc)}, compared digit by digit without making that string. */
    private static boolean isCrcHex(String text, int from, int to, long crc) {
        if (to - from != 8) return false;
        for (int i = 7; i >= 0; i--, crc >>>= 4) if (text.charAt(from + i) != Character.forDigit((int) (crc & 15), 16)) return false;
        return true;
    }

    /** The header bytes, length prefix included, for these entries (offsets must be contiguous from 0). */
    public static byte[] encodeHeader(Map<String, String> metadata, List<Entry> entries) throws IOException {
        ByteBuffer header = encodeHeader(metadata, writer -> {}, entries);
        return java.util.Arrays.copyOf(header.array(), header.limit());
    }

    /** Metadata entries written straight into the header's JSON ({@link Json.Writer#name(String, String)}, then a value). */
    @FunctionalInterface
    public interface MetadataEntries {
        void writeTo(Json.Writer writer);
    }

    /**
     * The header bytes for these entries, with {@code more} metadata after {@code metadata}'s: a
     * checkpoint's two entries per tensor, written without a map of hundreds of thousands of
     * strings. The caller keeps every key distinct. The bytes are [0, limit) of the returned
     * buffer's array, the array the text was written into: a header of tens of megabytes is not copied.
     */
    public static ByteBuffer encodeHeader(Map<String, String> metadata, MetadataEntries more, List<Entry> entries) throws IOException {
        // Compact, in this order: the bytes Jackson's generator wrote before (CheckpointFormatTest).
        Json.Writer g = new Json.Writer(false, expectedLength(metadata, entries), 8); // 8: the length, written last
        g.beginObject();
        g.name("__metadata__").beginObject();
        for (Map.Entry<String, String> e : metadata.entrySet()) g.name(e.getKey()).value(e.getValue());
        more.writeTo(g);
        g.name(HEADER_CRC_KEY).value(PLACEHOLDER);
        g.endObject();
        for (Entry e : entries) {
            g.name(e.name()).beginObject();
            g.name("dtype").value(e.dtype().name());
            g.name("shape").beginArray();
            if (e.dims() == null) g.value(e.length());
            else for (long d : e.dims()) g.value(d);
            g.endArray();
            g.name("data_offsets").beginArray().value(e.begin()).value(e.end()).endArray();
            g.endObject();
        }
        g.endObject();
        int length = g.utf8Length();
        int padded = (length + 7) / 8 * 8;
        byte[] out = g.utf8Array(padded - length);
        int end = 8 + padded;
        java.util.Arrays.fill(out, 8 + length, end, (byte) ' ');
        long n = padded;
        for (int i = 0; i < 8; i++) out[i] = (byte) (n >>> (8 * i));
        int at = crcField(out, 8, end);
        if (at < 0) {
            throw new IllegalArgumentException("the header would hold \"" + HEADER_CRC_KEY + "\":\" more than once, and a reader"
                    + " could not find its checksum: a parameter name that ends in a quote and " + HEADER_CRC_KEY
                    + " repeats it (in frozen.NAME or tensor_step.NAME); rename the parameter");
        }
        String crc = crcHex(headerCrc(out, out, 8, end, at));
        System.arraycopy(crc.getBytes(StandardCharsets.US_ASCII), 0, out, at, 8);
        return ByteBuffer.wrap(out, 0, end);
    }

    /**
     * About the length of a fusedopt header in bytes: each entry's JSON
     * ({@code "NAME":{"dtype":"F32","shape":[L],"data_offsets":[B,E]},}, the name, its numbers and
     * 49 bytes) and, for a checkpoint, its two metadata entries ({@code "group_of.NAME":"G",} and
     * {@code "crc32c.NAME":"01234567",}, the name twice and 38 bytes and more); sized so, the text
     * is written into one array, neither grown nor much larger than needed (a name with escapes or
     * beyond ASCII costs one growth).
     */
    private static int expectedLength(Map<String, String> metadata, List<Entry> entries) {
        long length = 1024;
        for (Map.Entry<String, String> e : metadata.entrySet()) length += e.getKey().length() + e.getValue().length() + 6;
        for (Entry e : entries) {
            length += 3L * e.name().length() + 90 + decimalDigits(e.length()) + decimalDigits(e.begin()) + decimalDigits(e.end())
                    + (e.dims() == null ? 0 : 21L * e.dims().length);
        }
        return (int) Math.min(length, Integer.MAX_VALUE - 8);
    }

    private static int decimalDigits(long v) {
        int digits = 1;
        for (long rest = v / 10; rest != 0; rest /= 10) digits++;
        return digits;
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
        // ASCII is valid UTF-8 that decodes to the same characters, at the same offsets; a Latin-1 copy
        // is many times faster than a decoder, and the checksum's key is found with String.indexOf.
        String ascii = isAscii(header) ? new String(header, StandardCharsets.ISO_8859_1) : null;
        int at = ascii != null ? crcField(ascii, ascii.length()) : crcField(header, 0, header.length);
        if (at < 0) throw new CheckpointException(file + ": the header has no " + HEADER_CRC_KEY + " (not a fusedopt checkpoint, or damaged)");
        String stored = new String(header, at, 8, StandardCharsets.US_ASCII);
        String actual = crcHex(headerCrc(lengthPrefix, header, 0, header.length, at));
        if (!stored.equals(actual)) {
            throw new CheckpointException(file + ": header checksum mismatch (stored " + stored + ", computed " + actual
                    + "): the header is damaged");
        }
        // Streamed, the entries declare the data length; bounded only so that offsets stay within a long.
        long dataLength = streamed ? Long.MAX_VALUE - 8 - n : fileSize - 8 - n;
        List<Entry> entries = new ArrayList<>();
        EntryFields fields = new EntryFields();
        String text;
        if (ascii != null) {
            text = ascii;
        } else {
            try {
                // Strict UTF-8, as safetensors requires: the JSON parser would otherwise guess an encoding.
                text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                        .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                        .decode(java.nio.ByteBuffer.wrap(header)).toString();
            } catch (java.nio.charset.CharacterCodingException e) {
                throw new CheckpointException(file + ": the header is not valid UTF-8", e);
            }
        }
        Metadata metadata = new Metadata(text);
        Json.Reader p = new Json.Reader(text, MAX_DEPTH, MAX_NAME_CHARS, MAX_STRING_CHARS);
        try {
            expect(p.peek() == Json.Kind.OBJECT, file, "the header is not a JSON object");
            p.beginObject();
            while (p.hasNext()) {
                String name = p.nextName(); // the reader refuses a name seen twice
                if (p.peek() != Json.Kind.OBJECT) throw problem(file, "'" + name + "' is not an object");
                if (name.equals("__metadata__")) {
                    p.beginObject();
                    while (p.hasNext()) {
                        // Kept as where they lie in the text: no string per key and value (Metadata).
                        long key = p.nextNameSpan();
                        String escapedKey = key < 0 ? p.escaped() : null;
                        int hash = metadata.hash(key, escapedKey);
                        if (metadata.find(hash, key, escapedKey) >= 0) throw p.repeatedKey(metadata.string(key, escapedKey));
                        if (p.peek() != Json.Kind.STRING) {
                            throw problem(file, "metadata '" + metadata.string(key, escapedKey) + "' is not a string");
                        }
                        long value = p.nextStringSpan();
                        metadata.add(hash, key, escapedKey, value, value < 0 ? p.escaped() : null);
                    }
                } else {
                    p.beginObject();
                    entries.add(parseEntry(p, file, name, dataLength, fields));
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

    /**
     * The header's metadata, read-only: string pairs in file order. A header of 10^5 tensors holds
     * 2 * 10^5 pairs ({@code group_of.T} and {@code crc32c.T} of each tensor), so each key and value
     * is kept as where it lies in the header's text ({@link Json.Reader#span}), not as a string of
     * its own: the strings and a map's nodes made most of a load's memory, all of it alive until
     * the load ends, and the collector copied it again and again. Pairs are found through one
     * open-addressing table of hash and position, and read by position ({@link #keyAt},
     * {@link #valueAt}, or compared in place: {@link #keyIs}, {@link #valueIs}) by a reader that
     * knows which one comes next. A string is made when asked for.
     */
    public static final class Metadata extends java.util.AbstractMap<String, String> {
        /** The text the spans index. */
        private final String text;
        /** Per pair in file order, where its key and its value lie in the text; -1 where the string held an escape. */
        private long[] keySpans = new long[16];
        private long[] valueSpans = new long[16];
        /** The strings that held an escape, unescaped, by {@code 2 * position} (key) or {@code 2 * position + 1} (value): few. */
        private final Map<Integer, String> escaped = new java.util.HashMap<>();
        private int size;
        /** Slots {@code hash << 32 | position + 1} (0: empty), a power of two in length, at most half full. */
        private long[] table = new long[32];

        private Metadata(String text) {
            this.text = text;
        }

        /** The hash of a key read as {@code span} ({@link String#hashCode()} of its characters), or of {@code escapedKey} where the span is -1. */
        int hash(long span, String escapedKey) {
            if (span < 0) return escapedKey.hashCode();
            int h = 0;
            for (int i = Json.Reader.spanFrom(span), to = Json.Reader.spanTo(span); i < to; i++) h = 31 * h + text.charAt(i);
            return h;
        }

        /** The string of a span of the text, or {@code escapedString} where it is -1. */
        String string(long span, String escapedString) {
            return span < 0 ? escapedString : text.substring(Json.Reader.spanFrom(span), Json.Reader.spanTo(span));
        }

        /** Adds a pair whose key is not here yet ({@link #find} said so; {@code hash} is {@link #hash} of the key). */
        void add(int hash, long keySpan, String escapedKey, long valueSpan, String escapedValue) {
            if (size == keySpans.length) {
                keySpans = java.util.Arrays.copyOf(keySpans, 2 * size);
                valueSpans = java.util.Arrays.copyOf(valueSpans, 2 * size);
            }
            keySpans[size] = keySpan;
            valueSpans[size] = valueSpan;
            if (keySpan < 0) escaped.put(2 * size, escapedKey);
            if (valueSpan < 0) escaped.put(2 * size + 1, escapedValue);
            size++;
            if (2 * size > table.length) {
                long[] old = table;
                table = new long[2 * table.length];
                for (long slot : old) if (slot != 0) place(slot);
            }
            place((long) hash << 32 | size); // position + 1
        }

        private void place(long slot) {
            int mask = table.length - 1;
            int i = firstSlot((int) (slot >>> 32), mask);
            while (table[i] != 0) i = (i + 1) & mask;
            table[i] = slot;
        }

        private static int firstSlot(int hash, int mask) {
            return (hash * 0x9E3779B9) >>> Integer.numberOfLeadingZeros(mask);
        }

        /** The position of the key read as {@code span} (or {@code escapedKey}), whose {@link #hash} is {@code hash}; -1 when absent. */
        int find(int hash, long span, String escapedKey) {
            String source = span < 0 ? escapedKey : text;
            int from = span < 0 ? 0 : Json.Reader.spanFrom(span);
            int length = span < 0 ? escapedKey.length() : Json.Reader.spanTo(span) - from;
            int mask = table.length - 1;
            for (int i = firstSlot(hash, mask); table[i] != 0; i = (i + 1) & mask) {
                long slot = table[i];
                int position = (int) slot - 1;
                if ((int) (slot >>> 32) == hash && matches(keySpans[position], 2 * position, source, from, length)) return position;
            }
            return -1;
        }

        /** Whether the string kept as {@code span} (or escaped, at {@code escapedIndex}) is source[from, from + length). */
        private boolean matches(long span, int escapedIndex, String source, int from, int length) {
            if (span < 0) {
                String s = escaped.get(escapedIndex);
                return s.length() == length && s.regionMatches(0, source, from, length);
            }
            int at = Json.Reader.spanFrom(span);
            return Json.Reader.spanTo(span) - at == length && text.regionMatches(at, source, from, length);
        }

        /** The position of {@code key} in file order, or -1. */
        public int indexOf(String key) {
            return find(key.hashCode(), -1, key);
        }

        /** The key at {@code position} in file order. */
        public String keyAt(int position) {
            java.util.Objects.checkIndex(position, size);
            return keySpans[position] < 0 ? escaped.get(2 * position) : string(keySpans[position], null);
        }

        /** The value at {@code position} in file order. */
        public String valueAt(int position) {
            java.util.Objects.checkIndex(position, size);
            return valueSpans[position] < 0 ? escaped.get(2 * position + 1) : string(valueSpans[position], null);
        }

        /** Whether the key at {@code position} starts with {@code prefix}, compared in place. */
        public boolean keyStartsWith(int position, String prefix) {
            java.util.Objects.checkIndex(position, size);
            long span = keySpans[position];
            if (span < 0) return escaped.get(2 * position).startsWith(prefix);
            return Json.Reader.spanTo(span) - Json.Reader.spanFrom(span) >= prefix.length() && text.startsWith(prefix, Json.Reader.spanFrom(span));
        }

        /** Whether the key at {@code position} is {@code prefix + rest}, compared in place. */
        public boolean keyIs(int position, String prefix, String rest) {
            java.util.Objects.checkIndex(position, size);
            long span = keySpans[position];
            String source = span < 0 ? escaped.get(2 * position) : text;
            int from = span < 0 ? 0 : Json.Reader.spanFrom(span);
            int length = span < 0 ? source.length() : Json.Reader.spanTo(span) - from;
            return length == prefix.length() + rest.length() && source.startsWith(prefix, from)
                    && source.startsWith(rest, from + prefix.length());
        }

        /** Whether the value at {@code position} is {@code expected}, compared in place. */
        public boolean valueIs(int position, String expected) {
            java.util.Objects.checkIndex(position, size);
            return matches(valueSpans[position], 2 * position + 1, expected, 0, expected.length());
        }

        /** Whether the value at {@code position} is {@link #crcHex}{@code (crc)}, compared in place. */
        public boolean valueIsCrcHex(int position, long crc) {
            java.util.Objects.checkIndex(position, size);
            long span = valueSpans[position];
            if (span < 0) return isCrcHex(escaped.get(2 * position + 1), 0, escaped.get(2 * position + 1).length(), crc);
            return isCrcHex(text, Json.Reader.spanFrom(span), Json.Reader.spanTo(span), crc);
        }

        @Override
        public String get(Object key) {
            int position = key instanceof String k ? indexOf(k) : -1;
            return position < 0 ? null : valueAt(position);
        }

        @Override
        public boolean containsKey(Object key) {
            return key instanceof String k && indexOf(k) >= 0;
        }

        @Override
        public int size() {
            return size;
        }

        /** In file order, without an entry object per pair (the map's default makes one). */
        @Override
        public void forEach(java.util.function.BiConsumer<? super String, ? super String> action) {
            for (int i = 0; i < size; i++) action.accept(keyAt(i), valueAt(i));
        }

        @Override
        public java.util.Set<Map.Entry<String, String>> entrySet() {
            return new java.util.AbstractSet<>() {
                @Override
                public java.util.Iterator<Map.Entry<String, String>> iterator() {
                    return new java.util.Iterator<>() {
                        private int next;

                        @Override
                        public boolean hasNext() {
                            return next < size;
                        }

                        @Override
                        public Map.Entry<String, String> next() {
                            if (next >= size) throw new java.util.NoSuchElementException();
                            Map.Entry<String, String> e = new java.util.AbstractMap.SimpleImmutableEntry<>(keyAt(next), valueAt(next));
                            next++;
                            return e;
                        }
                    };
                }

                @Override
                public int size() {
                    return size;
                }
            };
        }
    }

    /** Reads the N header bytes after the length prefix. */
    @FunctionalInterface
    public interface HeaderSource {
        byte[] read(int n) throws IOException;
    }

    /**
     * The numbers of one entry's arrays, reused from entry to entry: a header of 10^5 tensors would
     * otherwise make four arrays per tensor.
     */
    private static final class EntryFields {
        final long[] shape = new long[MAX_RANK];
        final long[] offsets = new long[4];
    }

    private static Entry parseEntry(Json.Reader p, String file, String name, long dataLength, EntryFields fields)
            throws CheckpointException, Json.SyntaxException {
        String dtype = null;
        int shapeRank = -1, offsetCount = -1; // -1: the field is absent
        long[] shape = fields.shape;
        long[] offsets = fields.offsets;
        while (p.hasNext()) {
            String field = p.nextName();
            switch (field) {
                case "dtype" -> {
                    if (p.peek() != Json.Kind.STRING) throw problem(file, "dtype of '" + name + "' is not a string");
                    dtype = p.nextString();
                }
                case "shape" -> shapeRank = longArray(p, file, "shape", name, shape);
                case "data_offsets" -> offsetCount = longArray(p, file, "data_offsets", name, offsets);
                default -> throw new CheckpointException(file + ": tensor '" + name + "' has an unknown field '" + field + "'");
            }
        }
        if (dtype == null || shapeRank < 0 || offsetCount < 0) {
            throw new CheckpointException(file + ": tensor '" + name + "' lacks dtype, shape or data_offsets");
        }
        Dtype type = switch (dtype) {
            case "F32" -> Dtype.F32;
            case "BF16" -> Dtype.BF16;
            case "F16" -> Dtype.F16;
            case "U8" -> Dtype.U8;
            default -> throw new CheckpointException(file + ": tensor '" + name + "' has dtype " + dtype
                    + "; fusedopt stores F32, BF16, F16 and U8 (8-bit codes)");
        };
        if (offsetCount != 2) throw new CheckpointException(file + ": data_offsets of '" + name + "' must hold 2 numbers");
        long length = 1;
        for (int d = 0; d < shapeRank; d++) {
            if (shape[d] > 0 && length > Long.MAX_VALUE / shape[d]) {
                throw new CheckpointException(file + ": tensor '" + name + "' has shape " + java.util.Arrays.toString(
                        java.util.Arrays.copyOf(shape, shapeRank)) + ", whose element count is not a long");
            }
            length *= shape[d];
        }
        long begin = offsets[0], end = offsets[1];
        if (length < 0 || begin < 0 || end < begin || end > dataLength) {
            throw new CheckpointException(file + ": tensor '" + name + "' claims data bytes [" + begin + ", " + end + ") of "
                    + length + " elements, but the file holds " + dataLength + " data bytes"
                    + (end > dataLength ? " (truncated, or the header claims more data than exists)" : ""));
        }
        if (length > (end - begin) / type.bytes() || (end - begin) != length * type.bytes()) {
            throw new CheckpointException(file + ": tensor '" + name + "' has " + length + " " + dtype + " elements but "
                    + (end - begin) + " data bytes");
        }
        return new Entry(name, type, length, begin, end, shapeRank == 1 ? null : java.util.Arrays.copyOf(shape, shapeRank));
    }

    /** At most 4 non-negative integers, each within a long: {@code field} of tensor {@code name}, into {@code values}; how many. */
    private static int longArray(Json.Reader p, String file, String field, String name, long[] values)
            throws CheckpointException, Json.SyntaxException {
        if (p.peek() != Json.Kind.ARRAY) throw problem(file, field + " of '" + name + "' is not an array");
        p.beginArray();
        int n = 0;
        while (p.hasNext()) {
            if (n == values.length) throw problem(file, field + " of '" + name + "' is too long");
            if (p.peek() != Json.Kind.NUMBER) throw problem(file, field + " of '" + name + "' holds a non-integer");
            try {
                values[n++] = p.nextNonNegativeLong();
            } catch (Json.SyntaxException e) {
                throw new CheckpointException(file + ": " + field + " of '" + name + "' holds an absurd number: " + e.getMessage(), e);
            }
        }
        return n;
    }

    private static void expect(boolean condition, String file, String problem) throws CheckpointException {
        if (!condition) throw problem(file, problem);
    }

    /** A refusal; callers build the message only when they refuse (a header holds hundreds of thousands of names). */
    private static CheckpointException problem(String file, String problem) {
        return new CheckpointException(file + ": " + problem);
    }

    private static boolean isAscii(byte[] bytes) {
        for (byte b : bytes) if (b < 0) return false;
        return true;
    }

    /** The header checksum's key as it precedes its value: {@code "header_crc32c":"}. */
    private static final String CRC_KEY_TEXT = "\"" + HEADER_CRC_KEY + "\":\"";

    private static final byte[] CRC_KEY_BYTES = CRC_KEY_TEXT.getBytes(StandardCharsets.US_ASCII);

    /** The position of the 8 hex digits of the header checksum in {@code bytes}, or -1 (when not exactly once). */
    private static int crcField(byte[] bytes, int from, int to) {
        byte[] key = CRC_KEY_BYTES;
        int found = -1;
        for (int i = from, last = to - key.length - 8; i <= last; i++) {
            // Nearly every byte fails one of the first two tests: a 40 MB header is scanned in milliseconds.
            if (bytes[i] != '"' || bytes[i + 1] != 'h' || !java.util.Arrays.equals(bytes, i, i + key.length, key, 0, key.length)) continue;
            if (found >= 0) return -1;
            found = i + key.length;
        }
        return found;
    }

    /**
     * {@link #crcField(byte[], int, int)} over an ASCII header's text (character offsets are byte
     * offsets), {@code length} bytes long with its padding.
     */
    private static int crcField(String text, int length) {
        int last = length - CRC_KEY_TEXT.length() - 8; // the key must be followed by its 8 digits
        int first = text.indexOf(CRC_KEY_TEXT);
        if (first < 0 || first > last) return -1;
        int second = text.indexOf(CRC_KEY_TEXT, first + 1);
        return second >= 0 && second <= last ? -1 : first + CRC_KEY_TEXT.length();
    }

    /**
     * The CRC32C of the 8 length bytes ({@code prefix[0..8)}) and the header ({@code header[headerFrom,
     * headerTo)}), with the checksum's own 8 hex digits at {@code crcAt} in {@code header} read as
     * {@code 0}s. Prefix and header may be one array (as written) or two (as read).
     */
    private static long headerCrc(byte[] prefix, byte[] header, int headerFrom, int headerTo, int crcAt) {
        CRC32C crc = new CRC32C();
        crc.update(prefix, 0, 8);
        crc.update(header, headerFrom, crcAt - headerFrom);
        crc.update(PLACEHOLDER.getBytes(StandardCharsets.US_ASCII));
        crc.update(header, crcAt + 8, headerTo - crcAt - 8);
        return crc.getValue();
    }
}
