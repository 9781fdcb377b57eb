package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import jcuda.driver.CUstream;
import org.junit.jupiter.api.Test;

/** The engine never holds a null stream: handle 0 is the explicit legacy-stream handle (no driver needed). */
class StreamsTest {

    @Test
    void theDefaultStreamIsTheExplicitLegacyHandle() {
        CUstream legacy = Streams.of(0);
        assertNotNull(legacy);
        assertEquals(Streams.of(Streams.LEGACY), legacy);
        assertNotEquals(new CUstream(), legacy, "not the null handle, which JCuda's cuGraphLaunch refuses");
        assertEquals(Streams.of(0x7f00_1234_5600L), Streams.of(0x7f00_1234_5600L), "other handles are kept as given");
        assertNotEquals(legacy, Streams.of(0x7f00_1234_5600L));
    }
}
