package io.fusedopt.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The machine-readable benchmark rows and the tensor sets they name. */
class BenchmarkRecordTest {

    @Test
    void recordsAreOneJsonObjectWithDerivedBandwidth() {
        BenchmarkRecord r = new BenchmarkRecord("fusedopt", "adam", "default", "fp32", "one:268435456", "CUDA",
                "NVIDIA \"H100\"\n80GB", "CUDA 13.0", 2.5e-3, 28L * 268435456, 3000);
        assertEquals(28.0 * 268435456 / 2.5e-3 / 1e9, r.gbPerSecond(), 1e-9);
        assertEquals(r.gbPerSecond() / 3000, r.rooflineFraction(), 1e-12);
        String json = r.toJson();
        assertTrue(json.startsWith("{\"implementation\":\"fusedopt\",\"algorithm\":\"adam\""), json);
        assertTrue(json.contains("\"device\":\"NVIDIA \\\"H100\\\"\\n80GB\""), "quotes and newlines escaped: " + json);
        assertTrue(json.contains("\"bytes_per_step\":7516192768"), json);
        assertTrue(json.contains("\"gb_per_s\":3006.48"), json);
        assertTrue(!json.contains("\n"), "one line");
        assertTrue(r.toMarkdownRow().contains("| 2500.0 us | 3006.5 | 100.2% |"), r.toMarkdownRow());
    }

    @Test
    void missingRooflineIsNullNotNaN() {
        BenchmarkRecord r = new BenchmarkRecord("pytorch", "adam", "fused", "fp32", "transformer", "CUDA", "d", "v",
                1e-3, 1000, Double.NaN);
        assertTrue(r.toJson().contains("\"copy_bandwidth_gb_per_s\":null,\"roofline_fraction\":null"), r.toJson());
        assertTrue(r.toMarkdownRow().endsWith("| n/a |"));
    }

    @Test
    void theTransformerSetIsShapedAsPromised() {
        long[] sizes = TensorSets.transformer();
        assertTrue(sizes.length >= 500, sizes.length + " tensors");
        assertEquals(64, Arrays.stream(sizes).min().orElseThrow());
        assertTrue(Arrays.stream(sizes).max().orElseThrow() <= 1 << 24, "largest at most 16.8M");
        assertEquals(581, sizes.length);
        assertTrue(TensorSets.total(sizes) > 150_000_000L);
    }
}
