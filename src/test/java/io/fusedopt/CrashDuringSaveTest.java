package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A child JVM saves checkpoints in a loop and is killed (SIGKILL) at random moments: the file
 * left behind always loads completely, as one of the saved states, and the next save clears the
 * dead process's temporary file.
 */
class CrashDuringSaveTest {
    @TempDir
    Path dir;

    @Test
    void aKillAtAnyMomentLeavesALoadableCheckpoint() throws Exception {
        Path file = dir.resolve("opt.safetensors");
        Random random = new Random(42);
        Set<Long> stepsSeen = new HashSet<>();
        for (int round = 0; round < 6; round++) {
            Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), CheckpointSaver.class.getName(), file.toString())
                    .redirectErrorStream(true).start();
            try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream()))) {
                String line = out.readLine();
                assertEquals("ready", line, "child did not start");
                Thread.sleep(50 + random.nextInt(400));
                child.destroyForcibly();
                assertTrue(child.waitFor(30, TimeUnit.SECONDS));
            }
            try (CheckpointTest.Model m = new CheckpointTest.Model(Backend.CPU, Adam.builder().build(), Precision.FP32,
                    Precision.FP32, 9)) {
                m.opt.load(file); // throws if the file were partial or damaged
                stepsSeen.add(m.opt.stepCount());
            }
        }
        try (CheckpointTest.Model m = new CheckpointTest.Model(Backend.CPU, Adam.builder().build(), Precision.FP32,
                Precision.FP32, 9)) {
            m.opt.save(file);
        }
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "stale temporary files of killed savers are removed by the next save");
        }
        System.out.println("[fusedopt] checkpoint steps found after kills: " + stepsSeen);
    }
}
