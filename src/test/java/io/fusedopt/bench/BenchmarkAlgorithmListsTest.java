package io.fusedopt.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.TorchOptimizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.openjdk.jmh.annotations.Param;

/**
 * The benchmarks' algorithm lists against the registration: a JMH {@code @Param} list must be a
 * constant, so it cannot derive from {@link Algorithms}; this test keeps a new algorithm from being
 * left out of it.
 */
class BenchmarkAlgorithmListsTest {

    private static Set<String> registered() {
        return new TreeSet<>(Algorithms.benchmarkConfigs().keySet());
    }

    private static Set<String> paramValues(Class<?> benchmark) throws NoSuchFieldException {
        return new TreeSet<>(List.of(benchmark.getField("algorithm").getAnnotation(Param.class).value()));
    }

    @Test
    void theJmhAlgorithmParametersAreTheRegisteredBenchmarkNames() throws NoSuchFieldException {
        assertEquals(registered(), paramValues(StepBenchmark.class), "StepBenchmark's @Param algorithm");
        assertEquals(registered(), paramValues(SameTrafficBenchmark.class), "SameTrafficBenchmark's @Param algorithm");
    }

    /**
     * The CPU report compares every registered benchmark that PyTorch has with torch.optim. The GPU
     * evidence run keeps issue 13's set (the algorithms with a fused or foreach PyTorch peer), which
     * must stay registered benchmarks.
     */
    @Test
    void theCpuReportComparesEveryRegisteredBenchmarkTorchHas() {
        Set<String> withTorch = new TreeSet<>();
        for (String name : registered()) {
            if (Algorithms.torchEquivalent(StepBenchmark.config(name)).isPresent()) withTorch.add(name);
        }
        assertTrue(CpuReport.ALGORITHMS.containsAll(withTorch), "CpuReport.ALGORITHMS " + CpuReport.ALGORITHMS + " vs " + withTorch);
        for (String name : GpuEvidence.ALGORITHMS) {
            assertTrue(registered().contains(name) || List.of("amsgrad", "rmsprop-centered-momentum", "heavy-ball").contains(name), name);
        }
    }

    /**
     * Every name the PyTorch comparisons run has a torch.optim equivalent, and the table the scripts
     * read names it with its class and every argument.
     */
    @Test
    void theTorchTableCoversEveryComparedName() {
        List<String> compared = new ArrayList<>(GpuEvidence.ALGORITHMS);
        compared.addAll(CpuReport.ALGORITHMS);
        compared.addAll(CpuReport.EXTRA_ALGORITHMS);
        String json = TorchOptimizers.json(new TreeSet<>(compared));
        for (String name : compared) {
            TorchOptimizer torch = Algorithms.torchEquivalent(StepBenchmark.config(name)).orElseThrow();
            String entry = json.substring(json.indexOf("\"" + name + "\": {"));
            assertTrue(entry.startsWith("\"" + name + "\": {\n    \"class\": \"" + torch.className() + "\""), entry);
            for (String argument : torch.arguments().keySet()) {
                assertTrue(entry.substring(0, entry.indexOf('}')).contains("\"" + argument + "\": "), name + " " + argument + ": " + entry);
            }
        }
    }
}
