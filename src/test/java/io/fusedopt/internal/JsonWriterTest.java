package io.fusedopt.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The writer's numbers, written digit by digit into its text (a checkpoint header holds three per
 * tensor), are {@link Long#toString(long)}'s; and a text written after reserved bytes lies in the
 * writer's own array where the caller expects it, with the room it asked for after it.
 */
class JsonWriterTest {
    @Test
    void longsAreWrittenAsLongToStringWritesThem() {
        Random random = new Random(8);
        long[] values = new long[64];
        long[] edges = {0, 1, 9, 10, 99, 100, -1, -9, -10, Long.MAX_VALUE, Long.MIN_VALUE, Long.MIN_VALUE + 1, 1L << 53};
        System.arraycopy(edges, 0, values, 0, edges.length);
        for (int i = edges.length; i < values.length; i++) values[i] = random.nextLong() >> random.nextInt(64);
        Json.Writer w = new Json.Writer();
        w.beginArray();
        StringBuilder expected = new StringBuilder("[");
        for (int i = 0; i < values.length; i++) {
            w.value(values[i]);
            expected.append(i > 0 ? "," : "").append(values[i]);
        }
        w.endArray();
        assertEquals(expected.append(']').toString(), w.toString());
    }

    @Test
    void textAfterReservedBytesLiesInTheWritersArrayWithRoomAfterIt() {
        Json.Writer w = new Json.Writer(false, 4, 8); // expected too small: the array grows
        w.beginObject().name("key").value("a value longer than four bytes").name("n").value(12345L).endObject();
        byte[] text = w.toUtf8();
        assertEquals("{\"key\":\"a value longer than four bytes\",\"n\":12345}", new String(text, StandardCharsets.UTF_8));
        assertEquals(text.length, w.utf8Length());
        byte[] array = w.utf8Array(7);
        assertArrayEquals(text, Arrays.copyOfRange(array, 8, 8 + text.length));
        assertTrue(array.length >= 8 + text.length + 7, "room for the padding");
    }
}
