package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The checkpoint reader under Jazzer: any bytes either load (then they were a valid checkpoint
 * for this optimizer) or fail with {@link CheckpointException}, and a failed load changes nothing.
 * Any other exception, a hang or an out-of-memory is a finding. In a normal test run only the
 * stored inputs (src/test/resources/io/fusedopt/CheckpointFuzzTestInputs) run; with
 * {@code JAZZER_FUZZ=1} Jazzer fuzzes for {@code maxDuration} (.ci/run does a bounded run).
 */
class CheckpointFuzzTest {
    private static DeviceOptimizer optimizer;

    /** The optimizer the seed checkpoint belongs to: Adam, bf16 param with master, two groups. */
    static DeviceOptimizer target() {
        DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build()).optBackend(Backend.CPU)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build();
        opt.addGroup().add("w", opt.allocate(3, Precision.BF16), opt.allocate(3, Precision.BF16));
        opt.addGroup().add("b", opt.allocate(2), opt.allocate(2));
        return opt;
    }

    @FuzzTest(maxDuration = "30s")
    void anyBytesLoadOrFailCleanly(byte[] bytes) throws IOException {
        if (optimizer == null) optimizer = target();
        long steps = optimizer.stepCount();
        float[] before = optimizer.groups().get(0).parameters().get(0).param().toArray();
        try {
            optimizer.load(bytes); // the public in-memory load: every check of a file load
        } catch (CheckpointException expected) {
            assertEquals(steps, optimizer.stepCount(), "a failed load changed the step count");
            float[] after = optimizer.groups().get(0).parameters().get(0).param().toArray();
            CudaEquivalenceTest.assertBitEqual(before, after, "a failed load changed a param");
        }
    }

    /** Writes the seed input: {@code java ... io.fusedopt.CheckpointFuzzTest DIR}. */
    public static void main(String[] args) throws IOException {
        try (DeviceOptimizer opt = target()) {
            opt.groups().get(0).parameters().get(0).grad().copyFrom(new float[] {1, -2, 3});
            opt.step();
            Files.createDirectories(Path.of(args[0]));
            opt.save(Path.of(args[0], "valid-checkpoint"));
        }
    }
}
