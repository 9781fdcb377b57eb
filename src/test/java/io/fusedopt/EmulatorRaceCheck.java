package io.fusedopt;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails every test during which the CUDA emulator found a data race, so that the emulator's test
 * execution ends with none. The emulator appends each race report to the file its environment
 * variable {@value #LOG_VARIABLE} names; the cuda-emulator execution of the pom sets it, and
 * registers this extension for every test through JUnit's extension autodetection
 * (META-INF/services). A race also fails its launch there ({@code FO_EMU_HAZARDS=fail}), but a test
 * that expects a failing launch, or never synchronizes, would not notice: the log does. Anywhere
 * the variable is not set, this does nothing.
 */
public final class EmulatorRaceCheck implements BeforeAllCallback, AfterEachCallback, AfterAllCallback {
    /** The emulator's environment variable: the file race reports are appended to. */
    static final String LOG_VARIABLE = "FO_EMU_HAZARD_LOG";

    private final Path log;
    private long seen;

    /** The check of this process's emulator, or none when {@value #LOG_VARIABLE} is not set. */
    public EmulatorRaceCheck() {
        this(System.getenv(LOG_VARIABLE));
    }

    EmulatorRaceCheck(String log) {
        this.log = log == null || log.isEmpty() ? null : Path.of(log);
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        if (log != null) seen = length();  // reports of earlier runs are theirs
    }

    @Override
    public void afterEach(ExtensionContext context) {
        failOnNewReports("this test");
    }

    @Override
    public void afterAll(ExtensionContext context) {
        failOnNewReports("this class's set-up, tear-down or a launch that ran after its tests");
    }

    /** Fails, with the emulator's reports, if the log grew since the last look. */
    void failOnNewReports(String during) {
        if (log == null) return;
        if (length() <= seen) return;
        byte[] all;
        try {
            all = Files.readAllBytes(log);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the CUDA emulator's race log " + log, e);
        }
        int from = (int) Math.min(seen, all.length);
        seen = all.length;
        String reports = new String(all, from, all.length - from, StandardCharsets.UTF_8).strip();
        fail("the CUDA emulator found a data race during " + during + " (" + log + "):\n" + reports);
    }

    private long length() {
        try {
            return Files.exists(log) ? Files.size(log) : 0;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the CUDA emulator's race log " + log, e);
        }
    }
}
