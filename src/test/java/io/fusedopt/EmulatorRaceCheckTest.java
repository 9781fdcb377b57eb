package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.opentest4j.AssertionFailedError;

/** The check that fails a test during which the CUDA emulator logged a data race (no GPU or emulator needed). */
class EmulatorRaceCheckTest {
    private static final String REPORT = "fusedopt CUDA emulator: data race in kernel k, block (1,0,0) thread (0,0,0) (launch #3,"
            + " order seed 1)\n  global memory: write of byte 0 of allocation #2 (4 bytes at 0x7f0000001000), which block"
            + " (0,0,0) wrote earlier in this launch; code at libcuda.so.1+0x1234\n";

    @TempDir
    Path dir;

    @Test
    void aTestDuringWhichTheLogGrewFailsWithTheReport() throws IOException {
        Path log = dir.resolve("hazards.log");
        EmulatorRaceCheck check = new EmulatorRaceCheck(log.toString());
        check.beforeAll(null);
        assertDoesNotThrow(() -> check.failOnNewReports("a test"), "no log yet: no race");
        Files.writeString(log, REPORT);
        AssertionFailedError failure = assertThrows(AssertionFailedError.class, () -> check.failOnNewReports("a test"));
        assertTrue(failure.getMessage().contains("data race during a test"), failure.getMessage());
        assertTrue(failure.getMessage().contains(REPORT.strip()), failure.getMessage());
        assertDoesNotThrow(() -> check.failOnNewReports("the next test"), "a report fails one test, not every later one");
        Files.writeString(log, REPORT.replace("launch #3", "launch #9"), StandardOpenOption.APPEND);
        failure = assertThrows(AssertionFailedError.class, () -> check.failOnNewReports("a third test"));
        assertTrue(failure.getMessage().contains("launch #9") && !failure.getMessage().contains("launch #3"), failure.getMessage());
    }

    @Test
    void reportsOfAnEarlierRunAreNotThisRunsAndNoLogMeansNoCheck() throws IOException {
        Path log = dir.resolve("hazards.log");
        Files.writeString(log, REPORT);
        EmulatorRaceCheck check = new EmulatorRaceCheck(log.toString());
        check.beforeAll(null);
        assertDoesNotThrow(() -> check.failOnNewReports("a test"));
        EmulatorRaceCheck off = new EmulatorRaceCheck(null);
        off.beforeAll(null);
        assertDoesNotThrow(() -> off.failOnNewReports("a test"), "without " + EmulatorRaceCheck.LOG_VARIABLE + " nothing is checked");
    }
}
