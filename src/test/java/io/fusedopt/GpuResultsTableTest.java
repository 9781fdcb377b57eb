package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** README's H200 tables hold the numbers of the committed GPU-evidence report, row for row. */
class GpuResultsTableTest {
    private static final Path REPORT = Path.of("benchmarks/results/2026-12-04-gpu-h200-lease2/narrow/evidence.md");

    @Test
    void theFp32TableIsTheReportsFp32Rows() throws IOException {
        assertTableIsTheReports("### Speed on an H200", "fp32");
    }

    @Test
    void theBf16TableIsTheReportsBf16Rows() throws IOException {
        assertTableIsTheReports("#### Speed on an H200 in bf16", "bf16");
    }

    /** The table under {@code heading}: for each algorithm the report's {@code storage} rows of one tensor and of the transformer set. */
    private static void assertTableIsTheReports(String heading, String storage) throws IOException {
        Map<String, String[]> report = new HashMap<>();
        for (String line : Files.readAllLines(REPORT)) {
            String[] cells = cells(line);
            // set | storage | algorithm | time/step | GB/s | of copy | of same-traffic | PyTorch | PyTorch time | speed-up
            if (cells.length == 10 && cells[1].equals(storage)) report.put(cells[0] + "/" + cells[2], cells);
        }
        List<String[]> rows = ReadmeTable.bodyRows(heading, 9);
        assertEquals(9, rows.size(), heading + ": one row per algorithm of the report");
        for (String[] row : rows) {
            String algorithm = row[0].trim();
            String[] one = report.get("one/" + algorithm), many = report.get("transformer/" + algorithm);
            assertNotNull(one, algorithm + " " + storage + " is not in " + REPORT);
            assertNotNull(many, algorithm + " " + storage + " is not in " + REPORT);
            String[] expected = {algorithm, one[7], one[3], one[5], one[8], one[9], many[3], many[8], many[9]};
            for (int i = 0; i < expected.length; i++) {
                assertEquals(expected[i], row[i].trim(), heading + ": " + algorithm + ", column " + (i + 1));
            }
        }
    }

    private static String[] cells(String line) {
        if (!line.startsWith("| ")) return new String[0];
        String[] cells = line.substring(1, line.length() - 1).split("\\|");
        for (int i = 0; i < cells.length; i++) cells[i] = cells[i].trim();
        return cells;
    }
}
