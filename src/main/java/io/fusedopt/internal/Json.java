package io.fusedopt.internal;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;

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
 * no unescaped control characters), a duplicate key in any object is refused, and it bounds the
 * nesting depth and the length of names and strings. The caller asks for the value it expects
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
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\b' -> out.append("\\b");
                case '\t' -> out.append("\\t");
                case '\n' -> out.append("\\n");
                case '\f' -> out.append("\\f");
                case '\r' -> out.append("\\r");
                default -> {
                    if (c < 0x20 || Character.isSurrogate(c)) {
                        out.append("\\u").append(HEX[c >> 12 & 15]).append(HEX[c >> 8 & 15]).append(HEX[c >> 4 & 15])
                                .append(HEX[c & 15]);
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /**
     * Writes JSON text, compact (no white space at all, as checkpoint headers are) or indented by two
     * spaces. The caller writes a well-formed sequence; misuse is an {@link IllegalStateException}.
     */
    public static final class Writer {
        private final StringBuilder out = new StringBuilder();
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
            this.pretty = pretty;
        }

        public Writer beginObject() {
            beforeValue();
            push(true);
            out.append('{');
            return this;
        }

        public Writer endObject() {
            return end(true, '}');
        }

        public Writer beginArray() {
            beforeValue();
            push(false);
            out.append('[');
            return this;
        }

        public Writer endArray() {
            return end(false, ']');
        }

        /** The name of the next member of the current object. */
        public Writer name(String name) {
            if (depth == 0 || !isObject[depth - 1] || afterName) throw new IllegalStateException("a name belongs in an object, before a value");
            separate();
            quote(out, name);
            out.append(pretty ? ": " : ":");
            afterName = true;
            return this;
        }

        public Writer value(String s) {
            beforeValue();
            quote(out, s);
            return this;
        }

        public Writer value(long v) {
            beforeValue();
            out.append(v);
            return this;
        }

        /** A finite double as {@link Double#toString(double)} writes it; NaN and the infinities as strings. */
        public Writer value(double v) {
            beforeValue();
            if (Double.isFinite(v)) out.append(v);
            else out.append('"').append(v).append('"');
            return this;
        }

        /** The text; the outermost value must be complete. */
        @Override
        public String toString() {
            if (!done || depth != 0) throw new IllegalStateException("the JSON value is not complete");
            return out.toString();
        }

        /** The text in UTF-8 (surrogates are escaped, so every character encodes). */
        public byte[] toUtf8() {
            return toString().getBytes(StandardCharsets.UTF_8);
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
            if (counts[depth - 1]++ > 0) out.append(',');
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
            out.append(close);
            if (depth == 0) done = true;
            return this;
        }

        private void newLine(int level) {
            if (!pretty) return;
            out.append('\n');
            for (int i = 0; i < level; i++) out.append("  ");
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
        private final Set<String>[] keys;
        /** After {@link #hasNext} said yes in an object: a name must come. */
        private boolean nameDue;
        private boolean started;

        /**
         * @param maxDepth the deepest nesting of objects and arrays allowed (1: only the outermost)
         * @param maxNameLength the longest object key, in chars
         * @param maxStringLength the longest string value, in chars
         */
        @SuppressWarnings({"unchecked", "rawtypes"})
        public Reader(String text, int maxDepth, int maxNameLength, int maxStringLength) {
            if (maxDepth < 1) throw new IllegalArgumentException("maxDepth must be at least 1");
            this.text = text;
            this.maxDepth = maxDepth;
            this.maxNameLength = maxNameLength;
            this.maxStringLength = maxStringLength;
            this.isObject = new boolean[maxDepth];
            this.counts = new int[maxDepth];
            this.keys = new Set[maxDepth];
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
                keys[level] = null;
                depth--;
                return false;
            }
            if (counts[level] > 0) {
                expect(',', "',' or '" + close + "'");
                skipWhiteSpace();
            }
            counts[level]++;
            nameDue = isObject[level];
            return true;
        }

        /** The next key of the current object, after {@link #hasNext} said yes; refuses a key seen before in it. */
        public String nextName() throws SyntaxException {
            if (!nameDue) throw new IllegalStateException("no name is due");
            skipWhiteSpace();
            int at = pos;
            if (pos >= text.length() || text.charAt(pos) != '"') throw error("a quoted key was expected");
            String name = string(maxNameLength, "key");
            skipWhiteSpace();
            expect(':', "':'");
            nameDue = false;
            if (!keys[depth - 1].add(name)) throw new SyntaxException("at character " + at + ": the key \"" + abbreviate(name) + "\" appears twice in one object");
            return name;
        }

        public String nextString() throws SyntaxException {
            if (peek() != Kind.STRING) throw error("a string was expected");
            return string(maxStringLength, "string");
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
            keys[depth] = object ? new HashSet<>() : null;
            depth++;
        }

        private void valueDue() {
            if (nameDue) throw new IllegalStateException("a name is due");
            if (depth == 0 && started) throw new IllegalStateException("the outermost value has been read");
        }

        private void afterValue() {
            if (depth == 0) started = true;
        }

        /** The string at pos (which holds its opening quote), unescaped. */
        private String string(int maxLength, String what) throws SyntaxException {
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
            String s = b == null ? text.substring(from, pos) : b.append(text, from, pos).toString();
            pos++;
            afterValue();
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
