package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SeekableByteChannel;
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
            Checkpoint.load(optimizer, "fuzz-input", new MemoryChannel(bytes));
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

    /** A read-only channel over bytes. */
    static final class MemoryChannel implements SeekableByteChannel {
        private final byte[] bytes;
        private long position;

        MemoryChannel(byte[] bytes) {
            this.bytes = bytes;
        }

        @Override public int read(ByteBuffer dst) {
            if (position >= bytes.length) return -1;
            int n = (int) Math.min(dst.remaining(), bytes.length - position);
            dst.put(bytes, (int) position, n);
            position += n;
            return n;
        }
        @Override public int write(ByteBuffer src) { throw new UnsupportedOperationException(); }
        @Override public long position() { return position; }
        @Override public SeekableByteChannel position(long p) { position = p; return this; }
        @Override public long size() { return bytes.length; }
        @Override public SeekableByteChannel truncate(long size) { throw new UnsupportedOperationException(); }
        @Override public boolean isOpen() { return true; }
        @Override public void close() {}
    }
}
