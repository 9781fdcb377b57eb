package io.fusedopt.internal;

import java.nio.charset.StandardCharsets;

/**
 * The little JSON fusedopt needs, with nothing beyond the JDK (a JSON library in the library's
 * dependencies would meet other versions of itself in users' dependency trees).
 *
 * <p>{@link Writer} writes JSON text; strings are escaped exactly as Jackson's UTF-8 generator
 * escaped them when it wrote checkpoint headers (so the checkpoint bytes stay the same): {@code "}
 * and {@code \} with a backslash, {@code \b \t \n \f \r} as such, every other character below
 * U+0020 and every surrogate (paired or not) as {@code \}{@code uXXXX} with upper-case hex digits,
 * everything else as itself.
 *
 * <p>{@link Reader} is a strict pull reader over text that has already been decoded (strictly) from
 * UTF-8: RFC 8259 syntax only (no comments, no single quotes, no trailing commas, no leading zeros,
 * no unescaped control characters), a duplicate key in any object is refused (keys read as spans,
 * {@link Reader#nextNameSpan}, by the caller that keeps them), and it bounds the nesting depth and
 * the length of names and strings. The caller asks for the value it expects
 * ({@link Reader#beginObject}, {@link Reader#nextString}, {@link Reader#nextNonNegativeLong}, ...),
 * so any other shape is an error. Every problem is a {@link SyntaxException} naming the character
 * offset; nothing else is thrown for any input.
 */
public final class Json {
    private Json() {}

    private static final char[] HEX = "0123456789ABCDEF".toCharArray();

    /** Malformed or unexpected JSON, with the character offset where it was found. */
    public static final class SyntaxException extends Exception {
        private static final long serialVersionUID = 1L;

        SyntaxException(String message) {
            super(message);
        }
    }

    /** Appends {@code s} as a JSON string literal (quotes included). */
    public static void quote(StringBuilder out, String s) {
        Utf8Text literal = new Utf8Text(s.length() + 2);
        literal.quoted(s);
        out.append(literal);
    }

    /**
     * Text being written, as UTF-8 bytes: JSON is written to be stored, and a checkpoint header of
     * tens of megabytes is then neither copied into a String nor encoded afterwards.
     */
    private static final class Utf8Text {
        private byte[] bytes;
        /** Where the text starts in {@link #bytes}: the bytes before it are the caller's. */
        private final int start;
        private int size;
        /** No byte of 0x80 or above written so far. */
        private boolean ascii = true;

        Utf8Text(int capacity) {
            this(capacity, 0);
        }

        Utf8Text(int capacity, int start) {
            bytes = new byte[start + Math.max(16, capacity)];
            this.start = start;
            size = start;
        }

        /** An ASCII character. */
        void ascii(char c) {
            if (size == bytes.length) grow(1);
            bytes[size++] = (byte) c;
        }

        /** The decimal digits of {@code v}, as {@link Long#toString(long)} writes them, without making that string. */
        void decimal(long v) {
            if (v == Long.MIN_VALUE) {
                ascii(Long.toString(v)); // its magnitude does not fit a long
                return;
            }
            if (bytes.length - size < 20) grow(20);
            if (v < 0) {
                bytes[size++] = '-';
                v = -v;
            }
            int digits = 1;
            for (long rest = v / 10; rest != 0; rest /= 10) digits++;
            for (int i = size + digits - 1; i >= size; i--, v /= 10) bytes[i] = (byte) ('0' + v % 10);
            size += digits;
        }

        /** A text of ASCII characters (numbers, punctuation). */
        void ascii(String s) {
            if (bytes.length - size < s.length()) grow(s.length());
            for (int i = 0; i < s.length(); i++) bytes[size++] = (byte) s.charAt(i);
        }

        /** {@code s} as a JSON string literal: quotes, and the escapes the class comment lists. */
        void quoted(String s) {
            ascii('"');
            escaped(s);
            ascii('"');
        }

        /** {@code s}'s characters, escaped as a JSON string's. */
        void escaped(String s) {
            int plain = 0; // s[plain, i) needs no escape: appended in one piece
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c >= 0x20 && c != '"' && c != '\\' && !Character.isSurrogate(c)) continue;
                utf8(s, plain, i);
                plain = i + 1;
                switch (c) {
                    case '"' -> ascii("\\\"");
                    case '\\' -> ascii("\\\\");
                    case '\b' -> ascii("\\b");
                    case '\t' -> ascii("\\t");
                    case '\n' -> ascii("\\n");
                    case '\f' -> ascii("\\f");
                    case '\r' -> ascii("\\r");
                    default -> {
                        ascii("\\u");
                        for (int shift = 12; shift >= 0; shift -= 4) ascii(HEX[c >> shift & 15]);
                    }
                }
            }
            utf8(s, plain, s.length());
        }

        /** s[from, to) in UTF-8; no surrogates (escaped() escapes them), so 1 to 3 bytes per character. */
        private void utf8(String s, int from, int to) {
            if (bytes.length - size < 3 * (to - from)) grow(3 * (to - from));
            for (int i = from; i < to; i++) {
                char c = s.charAt(i);
                if (c < 0x80) {
                    bytes[size++] = (byte) c;
                } else if (c < 0x800) {
                    bytes[size++] = (byte) (0xC0 | c >> 6);
                    bytes[size++] = (byte) (0x80 | c & 0x3F);
                    ascii = false;
                } else {
                    bytes[size++] = (byte) (0xE0 | c >> 12);
                    bytes[size++] = (byte) (0x80 | c >> 6 & 0x3F);
                    bytes[size++] = (byte) (0x80 | c & 0x3F);
                    ascii = false;
                }
            }
        }

        private void grow(int more) {
            bytes = java.util.Arrays.copyOf(bytes, Math.max(2 * bytes.length, size + more));
        }

        @Override
        public String toString() {
            return new String(bytes, start, size - start, StandardCharsets.UTF_8);
        }
    }

    /**
     * Writes JSON text, compact (no white space at all, as checkpoint headers are) or indented by two
     * spaces. The caller writes a well-formed sequence; misuse is an {@link IllegalStateException}.
     */
    public static final class Writer {
        private final Utf8Text out;
        private final boolean pretty;
        private boolean[] isObject = new boolean[8];
        private int[] counts = new int[8];
        private int depth;
        private boolean afterName;
        private boolean done;

        /** A compact writer. */
        public Writer() {
            this(false);
        }

        public Writer(boolean pretty) {
            this(pretty, 64);
        }

        /** A writer whose text is expected to take about {@code expectedBytes} in UTF-8 (grown as needed). */
        public Writer(boolean pretty, int expectedBytes) {
            this(pretty, expectedBytes, 0);
        }

        /**
         * As {@link #Writer(boolean, int)}, the text to start at byte {@code reserved} of the array
         * {@link #utf8Array} returns: the bytes before it are the caller's (a header's length).
         */
        public Writer(boolean pretty, int expectedBytes, int reserved) {
            this.pretty = pretty;
            this.out = new Utf8Text(expectedBytes, reserved);
        }

        public Writer beginObject() {
            beforeValue();
            push(true);
            out.ascii('{');
            return this;
        }

        public Writer endObject() {
            return end(true, '}');
        }

        public Writer beginArray() {
            beforeValue();
            push(false);
            out.ascii('[');
            return this;
        }

        public Writer endArray() {
            return end(false, ']');
        }

        /** The name of the next member of the current object. */
        public Writer name(String name) {
            return name(name, "");
        }

        /** The name {@code first + second}, without making that string (a header writes hundreds of thousands). */
        public Writer name(String first, String second) {
            if (depth == 0 || !isObject[depth - 1] || afterName) throw new IllegalStateException("a name belongs in an object, before a value");
            separate();
            out.ascii('"');
            out.escaped(first);
            out.escaped(second);
            out.ascii('"');
            out.ascii(pretty ? ": " : ":");
            afterName = true;
            return this;
        }

        public Writer value(String s) {
            beforeValue();
            out.quoted(s);
            return this;
        }

        public Writer value(long v) {
            beforeValue();
            out.decimal(v); // a header writes three numbers per tensor: no string each
            return this;
        }

        /** {@code true} or {@code false}. */
        public Writer value(boolean v) {
            beforeValue();
            out.ascii(v ? "true" : "false");
            return this;
        }

        /** A finite double as {@link Double#toString(double)} writes it; NaN and the infinities as strings. */
        public Writer value(double v) {
            beforeValue();
            if (Double.isFinite(v)) out.ascii(Double.toString(v));
            else out.quoted(Double.toString(v));
            return this;
        }

        /** The text; the outermost value must be complete. */
        @Override
        public String toString() {
            return completeText().toString();
        }

        /** The text in UTF-8 (surrogates are escaped, so every character encodes). */
        public byte[] toUtf8() {
            return java.util.Arrays.copyOfRange(completeText().bytes, out.start, out.size);
        }

        /** The length of the text in UTF-8. */
        public int utf8Length() {
            return completeText().size - out.start;
        }

        /**
         * The writer's own array, the text in UTF-8 at [reserved, reserved + {@link #utf8Length()}),
         * and at least {@code spare} bytes after it: a header of tens of megabytes is not copied. The
         * writer must not be used afterwards.
         */
        public byte[] utf8Array(int spare) {
            Utf8Text text = completeText();
            if (text.bytes.length - text.size < spare) text.bytes = java.util.Arrays.copyOf(text.bytes, text.size + spare); // no doubling at the end
            return text.bytes;
        }

        private Utf8Text completeText() {
            if (!done || depth != 0) throw new IllegalStateException("the JSON value is not complete");
            return out;
        }

        private void beforeValue() {
            if (done) throw new IllegalStateException("one top-level value only");
            if (depth > 0) {
                if (isObject[depth - 1]) {
                    if (!afterName) throw new IllegalStateException("a value in an object needs a name first");
                    afterName = false;
                } else {
                    separate();
                }
            }
        }

        private void separate() {
            if (counts[depth - 1]++ > 0) out.ascii(',');
            newLine(depth);
        }

        private void push(boolean object) {
            if (depth == isObject.length) {
                isObject = java.util.Arrays.copyOf(isObject, depth * 2);
                counts = java.util.Arrays.copyOf(counts, depth * 2);
            }
            isObject[depth] = object;
            counts[depth++] = 0;
        }

        private Writer end(boolean object, char close) {
            if (depth == 0 || isObject[depth - 1] != object || afterName) throw new IllegalStateException("unbalanced " + close);
            depth--;
            if (counts[depth] > 0) newLine(depth);
            out.ascii(close);
            if (depth == 0) done = true;
            return this;
        }

        private void newLine(int level) {
            if (!pretty) return;
            out.ascii('\n');
            for (int i = 0; i < level; i++) out.ascii("  ");
        }
    }

    /**
     * The keys of one object seen so far, for refusing a repeated key: a short array while there are
     * few, then an open-addressing table of the keys themselves. A checkpoint header holds hundreds
     * of thousands of objects of three keys each and two objects of hundreds of thousands of keys; a
     * hash set apiece, and its node per key, cost more than parsing them.
     */
    private static final class SeenKeys {
        private static final int FEW = 8;
        /** The keys in the order seen. */
        private String[] keys = new String[FEW];
        private int count;
        /**
         * Beyond {@link #FEW} keys, an open-addressing table (power-of-two length, at most half full)
         * of slots {@code hash << 32 | index + 1}: one array, so a probe costs one cache miss, and
         * only a slot whose hash matches reads the key itself. Null while there are few keys.
         */
        private long[] table;

        /** False when {@code key} was seen before. */
        boolean add(String key) {
            if (table == null) {
                for (int i = 0; i < count; i++) if (keys[i].equals(key)) return false;
                if (count < FEW) {
                    keys[count++] = key;
                    return true;
                }
                rehash(4 * FEW);
            }
            int h = key.hashCode();
            int mask = table.length - 1;
            int i = (h * 0x9E3779B9) >>> Integer.numberOfLeadingZeros(mask);
            for (long slot; (slot = table[i]) != 0; i = (i + 1) & mask) {
                if ((int) (slot >>> 32) == h && keys[(int) slot - 1].equals(key)) return false;
            }
            if (count == keys.length) keys = java.util.Arrays.copyOf(keys, 2 * count);
            keys[count++] = key;
            table[i] = (long) h << 32 | count;
            if (2 * count > table.length) rehash(2 * table.length);
            return true;
        }

        private void rehash(int length) {
            table = new long[length];
            int mask = length - 1;
            for (int k = 0; k < count; k++) {
                int h = keys[k].hashCode();
                int i = (h * 0x9E3779B9) >>> Integer.numberOfLeadingZeros(mask);
                while (table[i] != 0) i = (i + 1) & mask;
                table[i] = (long) h << 32 | (k + 1);
            }
        }

        void clear() {
            if (table == null) {
                java.util.Arrays.fill(keys, 0, count, null);
            } else {
                keys = new String[FEW];
                table = null;
            }
            count = 0;
        }
    }

    /** What the next value is, judged by its first character. */
    public enum Kind { OBJECT, ARRAY, STRING, NUMBER, TRUE, FALSE, NULL }

    /** A strict pull reader; see {@link Json}. Not for use by several threads. */
    public static final class Reader {
        private final String text;
        private final int maxDepth;
        private final int maxNameLength;
        private final int maxStringLength;
        private int pos;
        private int depth;
        private final boolean[] isObject;
        private final int[] counts;
        /** Per open object, the keys read so far in it (null for an array). */
        private final SeenKeys[] keys;
        /** After {@link #hasNext} said yes in an object: a name must come. */
        private boolean nameDue;
        /** Where the last key read starts (its quote), for {@link #repeatedKey}. */
        private int nameAt;
        /** The last string read that held an escape, unescaped. */
        private String escaped;
        private boolean started;

        /**
         * @param maxDepth the deepest nesting of objects and arrays allowed (1: only the outermost)
         * @param maxNameLength the longest object key, in chars
         * @param maxStringLength the longest string value, in chars
         */
        public Reader(String text, int maxDepth, int maxNameLength, int maxStringLength) {
            if (maxDepth < 1) throw new IllegalArgumentException("maxDepth must be at least 1");
            this.text = text;
            this.maxDepth = maxDepth;
            this.maxNameLength = maxNameLength;
            this.maxStringLength = maxStringLength;
            this.isObject = new boolean[maxDepth];
            this.counts = new int[maxDepth];
            this.keys = new SeenKeys[maxDepth];
        }

        /** The kind of the next value, without consuming it. */
        public Kind peek() throws SyntaxException {
            valueDue();
            skipWhiteSpace();
            if (pos >= text.length()) throw error("unexpected end of input, a value was expected");
            char c = text.charAt(pos);
            return switch (c) {
                case '{' -> Kind.OBJECT;
                case '[' -> Kind.ARRAY;
                case '"' -> Kind.STRING;
                case 't' -> Kind.TRUE;
                case 'f' -> Kind.FALSE;
                case 'n' -> Kind.NULL;
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) yield Kind.NUMBER;
                    throw error("unexpected " + describe(c) + ", a value was expected");
                }
            };
        }

        public void beginObject() throws SyntaxException {
            open('{', true);
        }

        public void beginArray() throws SyntaxException {
            open('[', false);
        }

        /**
         * Whether the current object or array has another member; when not, its closing bracket is
         * consumed. In an object a yes must be followed by {@link #nextName}.
         */
        public boolean hasNext() throws SyntaxException {
            if (depth == 0) throw new IllegalStateException("not inside an object or array");
            if (nameDue) throw new IllegalStateException("a name is due");
            skipWhiteSpace();
            int level = depth - 1;
            char close = isObject[level] ? '}' : ']';
            if (pos < text.length() && text.charAt(pos) == close) {
                pos++;
                if (keys[level] != null) keys[level].clear();
                depth--;
                return false;
            }
            if (counts[level] > 0) {
                expect(',', isObject[level] ? "',' or '}'" : "',' or ']'");
                skipWhiteSpace();
            }
            counts[level]++;
            nameDue = isObject[level];
            return true;
        }

        /** The next key of the current object, after {@link #hasNext} said yes; refuses a key seen before in it. */
        public String nextName() throws SyntaxException {
            long span = nameSpan();
            String name = stringOf(span);
            if (!keys[depth - 1].add(name)) throw repeatedKey(name);
            return name;
        }

        /**
         * The next key of the current object, after {@link #hasNext} said yes, as where it lies in
         * the text ({@link #span}), so that a caller keeping hundreds of thousands of keys makes no
         * string of each. The reader does not compare it with the object's other keys: the caller
         * refuses a repeated key ({@link #repeatedKey}).
         */
        public long nextNameSpan() throws SyntaxException {
            return nameSpan();
        }

        public String nextString() throws SyntaxException {
            if (peek() != Kind.STRING) throw error("a string was expected");
            return stringOf(stringSpan(maxStringLength, "string"));
        }

        /** The next value, a string, as where it lies in the text ({@link #span}). */
        public long nextStringSpan() throws SyntaxException {
            if (peek() != Kind.STRING) throw error("a string was expected");
            return stringSpan(maxStringLength, "string");
        }

        /**
         * What {@link #nextNameSpan} and {@link #nextStringSpan} return: {@code (long) from << 32 | to}
         * when the string holds no escape (its characters are {@link #text()}{@code [from, to)}), else
         * -1, and the string unescaped is {@link #escaped()} until the next string is read.
         */
        public static long span(int from, int to) {
            return (long) from << 32 | to;
        }

        /** Where a span from {@link #nextNameSpan} or {@link #nextStringSpan} starts in the text. */
        public static int spanFrom(long span) {
            return (int) (span >>> 32);
        }

        /** Where a span ends (exclusive). */
        public static int spanTo(long span) {
            return (int) span;
        }

        /** The text being read. */
        public String text() {
            return text;
        }

        /** The last string read, unescaped, when it held an escape (its span was -1). */
        public String escaped() {
            return escaped;
        }

        /** The refusal of {@code key}, the last key read, as one the object already holds. */
        public SyntaxException repeatedKey(String key) {
            return new SyntaxException("at character " + nameAt + ": the key \"" + abbreviate(key) + "\" appears twice in one object");
        }

        /** The key at pos, its colon consumed; where it starts is kept for {@link #repeatedKey}. */
        private long nameSpan() throws SyntaxException {
            if (!nameDue) throw new IllegalStateException("no name is due");
            skipWhiteSpace();
            nameAt = pos;
            if (pos >= text.length() || text.charAt(pos) != '"') throw error("a quoted key was expected");
            long span = stringSpan(maxNameLength, "key");
            skipWhiteSpace();
            expect(':', "':'");
            nameDue = false;
            return span;
        }

        /**
         * A number that must be a non-negative integer that fits a {@code long}: digits only, no sign,
         * no fraction, no exponent, no leading zero.
         */
        public long nextNonNegativeLong() throws SyntaxException {
            if (peek() != Kind.NUMBER) throw error("a number was expected");
            int start = pos;
            if (text.charAt(pos) == '-') throw error("a non-negative integer was expected, not a negative number");
            long value = 0;
            while (pos < text.length() && isDigit(text.charAt(pos))) {
                int digit = text.charAt(pos) - '0';
                if (value > (Long.MAX_VALUE - digit) / 10) {
                    pos = start;
                    throw error("the integer overflows 64 bits");
                }
                value = value * 10 + digit;
                pos++;
            }
            if (pos - start > 1 && text.charAt(start) == '0') {
                pos = start;
                throw error("a number with a leading zero");
            }
            if (pos < text.length() && (text.charAt(pos) == '.' || text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
                pos = start;
                throw error("an integer was expected, not a fraction or an exponent");
            }
            afterValue();
            return value;
        }

        /** Any JSON number (RFC 8259 syntax), as the nearest double. */
        public double nextDouble() throws SyntaxException {
            if (peek() != Kind.NUMBER) throw error("a number was expected");
            int start = pos;
            if (text.charAt(pos) == '-') pos++;
            if (pos < text.length() && text.charAt(pos) == '0') {
                pos++;
            } else if (digits() == 0) {
                throw error("a digit was expected");
            }
            if (pos < text.length() && text.charAt(pos) == '.') {
                pos++;
                if (digits() == 0) throw error("a digit was expected after '.'");
            }
            if (pos < text.length() && (text.charAt(pos) == 'e' || text.charAt(pos) == 'E')) {
                pos++;
                if (pos < text.length() && (text.charAt(pos) == '+' || text.charAt(pos) == '-')) pos++;
                if (digits() == 0) throw error("a digit was expected in the exponent");
            }
            if (pos - start > 1000) {
                pos = start;
                throw error("a number of more than 1000 characters");
            }
            afterValue();
            return Double.parseDouble(text.substring(start, pos));
        }

        /** The literal {@code true} or {@code false}. */
        public boolean nextBoolean() throws SyntaxException {
            Kind kind = peek();
            if (kind != Kind.TRUE && kind != Kind.FALSE) throw error("true or false was expected");
            String literal = kind == Kind.TRUE ? "true" : "false";
            if (!text.startsWith(literal, pos)) throw error("an invalid literal, " + literal + " was expected");
            pos += literal.length();
            afterValue();
            return kind == Kind.TRUE;
        }

        /** Nothing but white space may follow the outermost value. */
        public void end() throws SyntaxException {
            if (depth != 0 || !started) throw new IllegalStateException("the outermost value has not been read");
            skipWhiteSpace();
            if (pos < text.length()) throw error("trailing content after the JSON value");
        }

        /** The character offset of the reader. */
        public int position() {
            return pos;
        }

        private void open(char bracket, boolean object) throws SyntaxException {
            Kind kind = peek();
            if (kind != (object ? Kind.OBJECT : Kind.ARRAY)) throw error(object ? "an object was expected" : "an array was expected");
            if (depth == maxDepth) throw error("nested deeper than " + maxDepth + " levels");
            pos++;
            started = true;
            isObject[depth] = object;
            counts[depth] = 0;
            if (object) {
                if (keys[depth] == null) keys[depth] = new SeenKeys();
                keys[depth].clear();
            }
            depth++;
        }

        private void valueDue() {
            if (nameDue) throw new IllegalStateException("a name is due");
            if (depth == 0 && started) throw new IllegalStateException("the outermost value has been read");
        }

        private void afterValue() {
            if (depth == 0) started = true;
        }

        /** The string of a span (or {@link #escaped}); a short one shared with an equal one read lately. */
        private String stringOf(long span) {
            if (span < 0) return escaped;
            int from = spanFrom(span), to = spanTo(span);
            return to - from <= SHORT ? shortString(from, to) : text.substring(from, to);
        }

        /** The string at pos (which holds its opening quote): its span, or -1 and {@link #escaped} when it holds an escape. */
        private long stringSpan(int maxLength, String what) throws SyntaxException {
            int start = pos++;
            StringBuilder b = null;
            int from = pos;
            while (true) {
                if (pos >= text.length()) {
                    pos = start;
                    throw error("unterminated " + what);
                }
                char c = text.charAt(pos);
                if (c == '"') break;
                if (c < 0x20) throw error("unescaped control character " + describe(c) + " in a " + what);
                if (c == '\\') {
                    if (b == null) b = new StringBuilder();
                    b.append(text, from, pos);
                    b.append(escape());
                    from = pos;
                } else {
                    pos++;
                }
                if ((b == null ? 0 : b.length()) + (pos - from) > maxLength) {
                    pos = start;
                    throw error(what + " longer than " + maxLength + " characters");
                }
            }
            long span;
            if (b != null) {
                escaped = b.append(text, from, pos).toString();
                span = -1;
            } else {
                span = span(from, pos);
            }
            pos++;
            afterValue();
            return span;
        }

        /** Strings of at most this many characters are looked up among the {@link #recent} ones before one is made. */
        private static final int SHORT = 16;
        /** Short strings read lately, by hash: the field names and small values that repeat in every entry of a header. */
        private final String[] recent = new String[64];

        /**
         * text[from, to) (no escapes in it), the same instance as the last such string of equal hash
         * when it is equal: a header of 10^5 tensors repeats "dtype", "shape", "data_offsets", "F32"
         * and its groups' numbers hundreds of thousands of times.
         */
        private String shortString(int from, int to) {
            int hash = 0;
            for (int i = from; i < to; i++) hash = 31 * hash + text.charAt(i);
            int slot = (hash ^ hash >>> 16) & (recent.length - 1);
            String s = recent[slot];
            if (s != null && s.length() == to - from && text.regionMatches(from, s, 0, to - from)) return s;
            s = text.substring(from, to);
            recent[slot] = s;
            return s;
        }

        /** The escape at pos (its backslash), consumed. */
        private char escape() throws SyntaxException {
            if (pos + 1 >= text.length()) throw error("unterminated escape");
            char c = text.charAt(pos + 1);
            pos += 2;
            return switch (c) {
                case '"' -> '"';
                case '\\' -> '\\';
                case '/' -> '/';
                case 'b' -> '\b';
                case 'f' -> '\f';
                case 'n' -> '\n';
                case 'r' -> '\r';
                case 't' -> '\t';
                case 'u' -> {
                    if (pos + 4 > text.length()) throw error("unterminated \\u escape");
                    int v = 0;
                    for (int i = 0; i < 4; i++) {
                        int h = Character.digit(text.charAt(pos + i), 16);
                        // Character.digit also takes non-ASCII digits; JSON allows 0-9, a-f, A-F only.
                        if (h < 0 || text.charAt(pos + i) > 'f') throw error("invalid \\u escape");
                        v = v << 4 | h;
                    }
                    pos += 4;
                    // Lone surrogates are kept: the Jackson-based writer wrote any surrogate as an escape.
                    yield (char) v;
                }
                default -> {
                    pos -= 2;
                    throw error("invalid escape \\" + (c < 0x20 || c > 0x7e ? describe(c) : String.valueOf(c)));
                }
            };
        }

        private int digits() {
            int start = pos;
            while (pos < text.length() && isDigit(text.charAt(pos))) pos++;
            return pos - start;
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }

        private void expect(char c, String what) throws SyntaxException {
            if (pos >= text.length()) throw error("unexpected end of input, " + what + " was expected");
            if (text.charAt(pos) != c) throw error("unexpected " + describe(text.charAt(pos)) + ", " + what + " was expected");
            pos++;
        }

        private void skipWhiteSpace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
                pos++;
            }
        }

        private SyntaxException error(String problem) {
            return new SyntaxException("at character " + pos + ": " + problem);
        }

        private static String describe(char c) {
            return c >= 0x20 && c < 0x7f ? "'" + c + "'" : String.format("U+%04X", (int) c);
        }

        private static String abbreviate(String s) {
            StringBuilder b = new StringBuilder();
            quote(b, s.length() > 80 ? s.substring(0, 80) + "..." : s);
            return b.substring(1, b.length() - 1);
        }
    }
}
