package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The CUDA driver emulator's own tests (src/test/cuda-emulator/selftest.cpp): that it computes,
 * varies orders, and enforces every rule a GPU test relies on it to catch (bounds, alignment, use
 * after free, host and other-device pointers, barriers, data races in shared and global memory,
 * capture rules, context reset, host work on streams and in graphs). Runs in the emulator
 * execution only; the selftest logs its own deliberate races to a file of its own, not to the
 * execution's race log.
 */
@Tag("gpu")
class CudaEmulatorSelfTest {
    @Test
    void emulatorEnforcesTheDriverRulesItsTestsRelyOn() throws IOException, InterruptedException {
        String dir = System.getProperty("fusedopt.test.cudaEmulator");
        assumeTrue(dir != null, "runs in the cuda-emulator test execution only");
        String status = Files.readString(Path.of(dir, "status"), StandardCharsets.UTF_8).strip();
        assumeTrue(status.equals("ready"), "CUDA emulator " + status);

        Process process = new ProcessBuilder(Path.of(dir, "selftest").toString()).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "selftest did not finish");
        System.out.println(output);
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains(" 0 failed"), output);
        // Each fault check printed the emulator's report: the kind of fault and where it happened.
        assertTrue(output.contains("is not aligned to 16 bytes"), output);
        assertTrue(output.contains("use after free of allocation"), output);
        assertTrue(output.contains("threads of one block wait at different barriers"), output);
        assertTrue(output.contains("data race in kernel emu_shared_neighbour"), output);
        assertTrue(output.contains("data race in kernel emu_global_same_word"), output);
    }
}
