package io.fusedopt.cli;

import io.fusedopt.OptimizerConfig;
import io.fusedopt.internal.Algorithms;
import java.util.List;
import java.util.Map;

/**
 * Every algorithm variant the library implements, by name: what {@code selftest} runs and what the
 * equivalence tests run over, as each algorithm declares them ({@code Algorithm.variants()}). Each
 * flag of every kernel is on in at least one variant.
 */
public final class VariantCatalog {
    private VariantCatalog() {}

    /** The algorithms benchmarks measure, by name, each with its defaults (momentum: Nesterov, 0.9). */
    public static final List<String> BENCHMARK_ALGORITHMS = List.copyOf(Algorithms.benchmarkConfigs().keySet());

    /** The configuration {@code bench} and the JMH benchmarks measure for an algorithm name. */
    public static OptimizerConfig benchmarkConfig(String algorithm) {
        OptimizerConfig config = Algorithms.benchmarkConfigs().get(algorithm);
        if (config == null) throw new IllegalArgumentException("unknown algorithm '" + algorithm + "'; known: " + BENCHMARK_ALGORITHMS);
        return config;
    }

    /** Every variant, in a fixed order, by a name such as "adamw-amsgrad-step-size". */
    public static Map<String, OptimizerConfig> all() {
        return Algorithms.variants();
    }
}
