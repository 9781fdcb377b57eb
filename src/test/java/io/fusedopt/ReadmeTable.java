package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** A table of README.md that tests hold to what the code does. */
final class ReadmeTable {
    private ReadmeTable() {}

    /**
     * The body rows of the table under the heading {@code heading} (the lines after its
     * {@code | ---} separator, up to the next heading), split into cells with the leading and
     * trailing '|' dropped; each must have {@code columns} cells.
     */
    static List<String[]> bodyRows(String heading, int columns) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("README.md"));
        int start = lines.indexOf(heading);
        assertTrue(start >= 0, "README.md has no '" + heading + "' section");
        List<String[]> rows = new ArrayList<>();
        boolean body = false;
        for (int i = start + 1; i < lines.size() && !lines.get(i).startsWith("#"); i++) {
            String line = lines.get(i);
            if (line.startsWith("| ---")) {
                body = true;
            } else if (body && line.startsWith("| ")) {
                String[] cells = line.substring(1, line.length() - 1).split("\\|");
                assertEquals(columns, cells.length, line);
                rows.add(cells);
            }
        }
        return rows;
    }
}
