package io.fusedopt;

import java.nio.file.Path;

/**
 * Child process of {@link CrashDuringSaveTest}: saves checkpoints of alternating content to one
 * file as fast as it can until it is killed. Prints "ready" after the first save.
 */
public final class CheckpointSaver {
    private CheckpointSaver() {}

    public static void main(String[] args) throws Exception {
        Path file = Path.of(args[0]);
        try (CheckpointTest.Model m = new CheckpointTest.Model(Backend.CPU, Adam.builder().build(), Precision.FP32,
                Precision.FP32, 1)) {
            m.opt.save(file);
            System.out.println("ready");
            System.out.flush();
            for (int t = 1; ; t++) {
                m.steps(t, t + 1);
                m.opt.save(file);
            }
        }
    }
}
