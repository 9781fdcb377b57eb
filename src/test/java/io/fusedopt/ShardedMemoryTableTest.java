package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.UpdatePlan;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * The README's "Memory per rank, sharded" table against the formula P + G + S / W and against what
 * sharded optimizers own: every cell is the formula rounded to 4 decimals, and for every row and
 * every algorithm it lists, W ranks (W = 1, 2, 8) of a model of 8 tensors of 4096 elements (8-bit
 * states apply; Muon's are 64 x 64) each own exactly the formula's bytes per parameter of the
 * model after a step.
 */
class ShardedMemoryTableTest {
    private static final int TENSORS = 8;
    private static final int N = 4096;
    private static final int[] WORLD_SIZES = {1, 2, 8, 64, 1024};
    private static final int[] MEASURED = {1, 2, 8};

    /** A row's storage: the param format, the states' bytes per parameter (master weights included) and the builder's options. */
    private enum Storage {
        FP32("fp32 params, grads and states", Precision.FP32, false, false),
        BF16_MASTER("bf16 params and grads, fp32 master, fp32 states", Precision.BF16, false, false),
        BF16_STOCHASTIC_8BIT("bf16 rounded stochastically, 8-bit states", Precision.BF16, true, true);

        final String label;
        final Precision params;
        final boolean stochastic;
        final boolean eightBit;

        Storage(String label, Precision params, boolean stochastic, boolean eightBit) {
            this.label = label;
            this.params = params;
            this.stochastic = stochastic;
            this.eightBit = eightBit;
        }

        /** P + G. */
        double paramAndGradBytes() {
            return 2.0 * params.bytes();
        }

        /** S: the states' bytes (an 8-bit one: a byte and a float32 absmax per 256) and the fp32 master's. */
        double stateBytes(int states) {
            if (eightBit) return states * (1 + 4.0 / 256);
            return 4.0 * states + (params == Precision.FP32 ? 0 : 4);
        }

        static Storage of(String label) {
            for (Storage s : values()) if (s.label.equals(label)) return s;
            throw new AssertionError("unknown storage '" + label + "'");
        }
    }

    @Test
    void everyCellIsTheFormulaAndWhatTheRanksOwn() throws Exception {
        List<String[]> rows = ReadmeTable.bodyRows("### Memory per rank, sharded", 3 + WORLD_SIZES.length);
        assertEquals(11, rows.size(), "3 storages by their state counts");
        for (String[] row : rows) {
            Storage storage = Storage.of(row[0].trim());
            int states = Integer.parseInt(row[1].trim());
            for (int w = 0; w < WORLD_SIZES.length; w++) {
                double formula = storage.paramAndGradBytes() + storage.stateBytes(states) / WORLD_SIZES[w];
                assertEquals(formula, Double.parseDouble(row[3 + w].trim()), 0.00005, row[0] + ", " + states + " states, W = " + WORLD_SIZES[w]);
            }
            for (String name : row[2].replace("`", "").split(",")) {
                OptimizerConfig config = name.trim().equals("muon") ? Muon.builder().build() : Algorithms.benchmarkConfigs().get(name.trim());
                assertTrue(config != null, name + " is not a bench configuration");
                assertEquals(states, UpdatePlan.stateKinds(config, shapeOf(config)).size(), name + " states");
                for (int worldSize : MEASURED) {
                    double expected = storage.paramAndGradBytes() + storage.stateBytes(states) / worldSize;
                    for (long bytes : ownedBytesPerRank(config, storage, worldSize)) {
                        assertEquals(expected, (double) bytes / (TENSORS * N), 0.0, name + " " + storage + " at W = " + worldSize);
                    }
                }
            }
        }
    }

    /** Each rank's {@code ownedBytes()} after a step of the model: the params and grads it allocated, its tensors' states and masters. */
    private static List<Long> ownedBytesPerRank(OptimizerConfig config, Storage storage, int worldSize) throws Exception {
        List<LocalCommunicator> world = LocalCommunicator.world(worldSize, Duration.ofSeconds(30));
        ExecutorService pool = Executors.newFixedThreadPool(worldSize);
        try {
            List<Future<Long>> futures = new ArrayList<>();
            for (LocalCommunicator c : world) {
                futures.add(pool.submit(() -> {
                    DeviceOptimizer.Builder b = DeviceOptimizer.builder(config).optBackend(Backend.CPU);
                    if (storage.stochastic) b.optStochasticRounding(1);
                    if (storage.eightBit) b.optStateQuantization(StateQuantization.BLOCKWISE_8BIT);
                    try (ShardedOptimizer opt = ShardedOptimizer.create(b, c)) {
                        ShardedOptimizer.Group g = opt.addGroup();
                        for (int t = 0; t < TENSORS; t++) {
                            g.add("t" + t, opt.allocate(N, storage.params), opt.allocate(N, storage.params), shapeOf(config));
                        }
                        opt.step();
                        return opt.ownedBytes();
                    }
                }));
            }
            List<Long> bytes = new ArrayList<>();
            for (Future<Long> f : futures) bytes.add(f.get());
            return bytes;
        } finally {
            pool.shutdownNow();
        }
    }

    /** A tensor's shape: a vector, or Muon's 64 x 64 matrix. */
    private static long[] shapeOf(OptimizerConfig config) {
        return config instanceof Muon ? new long[] {64, 64} : new long[] {N};
    }
}
