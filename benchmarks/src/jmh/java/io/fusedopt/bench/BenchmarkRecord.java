package io.fusedopt.bench;

import java.util.Locale;

/**
 * One row of a benchmark result, as written to benchmarks/results/*.json (one JSON object a line).
 * {@code implementation} is "fusedopt" or the peer measured beside it (for example "pytorch").
 */
public record BenchmarkRecord(String implementation, String algorithm, String variant, String dtypes,
                              String tensorSet, String backend, String device, String driver,
                              double secondsPerStep, long bytesPerStep, double copyBandwidthGBs) {

    /** Bytes moved per second, in GB/s (10^9). */
    public double gbPerSecond() {
        return bytesPerStep / secondsPerStep / 1e9;
    }

    /** The fraction of the copy bandwidth measured in the same run (the roofline); NaN when none was measured. */
    public double rooflineFraction() {
        return copyBandwidthGBs > 0 ? gbPerSecond() / copyBandwidthGBs : Double.NaN;
    }

    public String toJson() {
        return "{" + field("implementation", implementation) + "," + field("algorithm", algorithm) + ","
                + field("variant", variant) + "," + field("dtypes", dtypes) + "," + field("tensor_set", tensorSet) + ","
                + field("backend", backend) + "," + field("device", device) + "," + field("driver", driver) + ","
                + number("seconds_per_step", secondsPerStep) + "," + "\"bytes_per_step\":" + bytesPerStep + ","
                + number("gb_per_s", gbPerSecond()) + "," + number("copy_bandwidth_gb_per_s", copyBandwidthGBs) + ","
                + number("roofline_fraction", rooflineFraction()) + "}";
    }

    /** A markdown table row: implementation, algorithm, variant, dtypes, set, backend, time, GB/s, roofline. */
    public String toMarkdownRow() {
        return String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %.1f us | %.1f | %s |", implementation, algorithm,
                variant, dtypes, tensorSet, backend, secondsPerStep * 1e6, gbPerSecond(),
                Double.isNaN(rooflineFraction()) ? "n/a" : String.format(Locale.ROOT, "%.1f%%", 100 * rooflineFraction()));
    }

    public static String markdownHeader() {
        return "| implementation | algorithm | variant | dtypes | tensor set | backend | time/step | GB/s | of copy bandwidth |\n"
                + "|---|---|---|---|---|---|---|---|---|";
    }

    private static String field(String name, String value) {
        return "\"" + name + "\":" + (value == null ? "null" : "\"" + escape(value) + "\"");
    }

    private static String number(String name, double value) {
        return "\"" + name + "\":" + (Double.isFinite(value) ? String.format(Locale.ROOT, "%.6g", value) : "null");
    }

    static String escape(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.toString();
    }
}
