package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.UpdatePlan;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * The README's "Memory per parameter" table against what the optimizers own: for every row (an
 * algorithm's bench configuration) and every column (a storage setup), an optimizer on the CPU
 * backend that allocated a param and a grad of N elements owns exactly N times the cell's bytes
 * after its first step (N = 4096: 8-bit states apply, and every cell times N is a whole number);
 * an algorithm without 8-bit states shows a dash there; and the table has a row for every bench
 * configuration.
 */
class MemoryTableTest {
    private static final int N = 4096;

    /** The columns after the state count, in the README's order. */
    private enum Setup {
        FP32(Precision.FP32, Precision.FP32, false, false),
        BF16_MASTER(Precision.BF16, Precision.FP32, false, false),
        BF16_MASTER_BF16_STATES(Precision.BF16, Precision.BF16, false, false),
        BF16_STOCHASTIC_BF16_STATES(Precision.BF16, Precision.BF16, true, false),
        FP32_8BIT_STATES(Precision.FP32, Precision.FP32, false, true),
        BF16_STOCHASTIC_8BIT_STATES(Precision.BF16, Precision.FP32, true, true);

        final Precision params;
        final Precision states;
        final boolean stochastic;
        final boolean eightBit;

        Setup(Precision params, Precision states, boolean stochastic, boolean eightBit) {
            this.params = params;
            this.states = states;
            this.stochastic = stochastic;
            this.eightBit = eightBit;
        }
    }

    @Test
    void everyCellIsWhatTheOptimizerOwns() throws Exception {
        List<String[]> rows = ReadmeTable.bodyRows("### Memory per parameter", 2 + Setup.values().length);
        Set<String> named = new TreeSet<>();
        for (String[] row : rows) {
            String name = row[0].replace("`", "").trim();
            named.add(name);
            OptimizerConfig config = Algorithms.benchmarkConfigs().get(name);
            assertTrue(config != null, name + " is not a bench configuration");
            assertEquals(UpdatePlan.of(config).usedSlots(), Integer.parseInt(row[1].trim()), name + " states");
            for (Setup setup : Setup.values()) {
                String cell = row[2 + setup.ordinal()].trim();
                if (setup.eightBit && !Algorithms.of(config).hasQuantizedStates()) {
                    assertEquals("—", cell, name + " has no 8-bit states");
                    continue;
                }
                double expected = Double.parseDouble(cell);
                DeviceOptimizer.Builder b = DeviceOptimizer.builder(config).optBackend(Backend.CPU).optStatePrecision(setup.states);
                if (setup.stochastic) b.optStochasticRounding(1);
                if (setup.eightBit) b.optStateQuantization(StateQuantization.BLOCKWISE_8BIT);
                try (DeviceOptimizer opt = b.build()) {
                    TensorBuffer p = opt.allocate(N, setup.params), g = opt.allocate(N, setup.params);
                    opt.addGroup().add("w", p, g);
                    opt.step();
                    assertEquals(expected * N, (double) opt.ownedBytes(), name + " " + setup + ": bytes per parameter "
                            + (double) opt.ownedBytes() / N);
                }
            }
        }
        assertEquals(new TreeSet<>(Algorithms.benchmarkConfigs().keySet()), named, "a row per bench configuration");
    }
}
