package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.Safetensors.Dtype;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The checkpoint reader under Jazzer: any bytes either load (then they were a valid checkpoint
 * for this optimizer) or fail with {@link CheckpointException}, and a failed load changes nothing.
 * Any other exception, a hang or an out-of-memory is a finding. In a normal test run only the
 * stored inputs (src/test/resources/io/fusedopt/CheckpointFuzzTestInputs) run; with
 * {@code JAZZER_FUZZ=1} Jazzer fuzzes for {@code maxDuration} (.ci/run does a bounded run). Two
 * seeds: a checkpoint of {@link #target()}, and the same with 8-bit states ({@link #withEightBitStates}).
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

    private static final String EIGHT_BIT_SEED = "CheckpointFuzzTestInputs/anyBytesLoadOrFailCleanly/valid-8bit-checkpoint";

    /** The 8-bit seed stays a checkpoint {@link #target()} loads (dequantized), so that fuzzing starts inside the 8-bit checks. */
    @Test
    void theEightBitSeedLoads() throws IOException {
        byte[] seed;
        try (InputStream in = CheckpointFuzzTest.class.getResourceAsStream(EIGHT_BIT_SEED)) {
            seed = in.readAllBytes();
        }
        try (DeviceOptimizer opt = target()) {
            LoadReport report = opt.load(seed, LoadOptions.defaults());
            assertEquals(Map.of("w/exp_avg", "dequantized: 8-bit codes of quantization/dynamic into FP32",
                    "w/exp_avg_sq", "dequantized: 8-bit codes of quantization/udynamic into FP32"), report.converted());
        }
    }

    /**
     * {@code checkpoint} (of {@link #target()}) with w's two states 8-bit, as an 8-bit optimizer
     * stores them (codes, absmax, code maps, metadata), checksums recomputed.
     */
    static byte[] withEightBitStates(byte[] checkpoint) throws IOException {
        QuantizedCheckpointTest.Parts file = new QuantizedCheckpointTest.Parts(checkpoint);
        file.metadata.put(CheckpointQuantization.STATE_QUANTIZATION, StateQuantization.BLOCKWISE_8BIT.name());
        file.metadata.put(CheckpointQuantization.BLOCK_SIZE, Integer.toString(StateQuantization.BLOCK));
        for (StateKind kind : List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ)) {
            String name = "w/" + kind.stateName();
            CodeMap map = BlockwiseQuantization.mapFor(kind);
            float[] values = file.floats(name);
            byte[] codes = new byte[values.length];
            float[] absmax = new float[BlockwiseQuantization.blocks(values.length)];
            BlockwiseQuantization.quantizeBlocks(values, map, codes, absmax);
            file.put(name, Dtype.U8, codes.length, codes);
            file.setFloats(name + CheckpointQuantization.ABSMAX, absmax);
            file.setFloats(CheckpointQuantization.mapTensor(map), map.table());
            file.metadata.put(CheckpointQuantization.CODE_MAP + name, CheckpointQuantization.mapTensor(map));
        }
        return file.bytes();
    }

    /** Writes the seed inputs: {@code java ... io.fusedopt.CheckpointFuzzTest DIR}. */
    public static void main(String[] args) throws IOException {
        try (DeviceOptimizer opt = target()) {
            opt.groups().get(0).parameters().get(0).grad().copyFrom(new float[] {1, -2, 3});
            opt.step();
            Files.createDirectories(Path.of(args[0]));
            opt.save(Path.of(args[0], "valid-checkpoint"));
            Files.write(Path.of(args[0], "valid-8bit-checkpoint"), withEightBitStates(opt.saveToBytes()));
        }
    }
}
