package io.fusedopt.internal;

import io.fusedopt.OptimizerConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The registration of every algorithm: the one list that names them. Every table that enumerates
 * algorithms (kernels, the checkpoint codec's types, the variant catalog, the benchmarks' and the
 * command line's lists) derives from it; {@code AlgorithmRegistryTest} holds it equal to the
 * classes {@link OptimizerConfig} permits.
 */
public final class Algorithms {
    private Algorithms() {}

    // Named in full, not imported: the API's Javadoc run reaches this file (without the incubating
    // Vector API module), and an import would make it read the algorithm classes' SIMD loops too.
    private static final List<Algorithm<?>> ALL = List.of(
            new io.fusedopt.internal.algorithms.SgdAlgorithm(),
            new io.fusedopt.internal.algorithms.MomentumAlgorithm(),
            new io.fusedopt.internal.algorithms.RmsPropAlgorithm(),
            new io.fusedopt.internal.algorithms.AdamAlgorithm(),
            new io.fusedopt.internal.algorithms.AdagradAlgorithm(),
            new io.fusedopt.internal.algorithms.AdamaxAlgorithm(),
            new io.fusedopt.internal.algorithms.AdadeltaAlgorithm(),
            new io.fusedopt.internal.algorithms.AsgdAlgorithm(),
            new io.fusedopt.internal.algorithms.RpropAlgorithm(),
            new io.fusedopt.internal.algorithms.NAdamAlgorithm(),
            new io.fusedopt.internal.algorithms.RAdamAlgorithm(),
            new io.fusedopt.internal.algorithms.LionAlgorithm(),
            new io.fusedopt.internal.algorithms.AdEMAMixAlgorithm(),
            new io.fusedopt.internal.algorithms.LarsAlgorithm(),
            new io.fusedopt.internal.algorithms.LambAlgorithm(),
            new io.fusedopt.internal.algorithms.MuonAlgorithm(),
            new io.fusedopt.internal.algorithms.AdafactorAlgorithm());

    private static final Map<Class<?>, Algorithm<?>> BY_CONFIG = new LinkedHashMap<>();
    private static final Map<String, Algorithm<?>> BY_TYPE_NAME = new LinkedHashMap<>();
    private static final List<UpdateKernel> KERNELS;

    static {
        List<UpdateKernel> kernels = new ArrayList<>();
        for (Algorithm<?> a : ALL) {
            if (BY_CONFIG.put(a.configType(), a) != null || BY_TYPE_NAME.put(a.typeName(), a) != null) {
                throw new IllegalStateException(a.typeName() + " is registered twice");
            }
            for (UpdateKernel k : a.kernels()) {
                k.assignCode(kernels.size());
                if (a.hasQuantizedStates()) k.markQuantized();
                kernels.add(k);
            }
        }
        KERNELS = Collections.unmodifiableList(kernels);
    }

    /** Every registered algorithm, in registration order. */
    public static List<Algorithm<?>> all() {
        return ALL;
    }

    /** Every kernel of every algorithm; a kernel's {@link UpdateKernel#code()} is its index here. */
    public static List<UpdateKernel> kernels() {
        return KERNELS;
    }

    /** The algorithm of {@code config}. */
    public static Algorithm<?> of(OptimizerConfig config) {
        Algorithm<?> a = BY_CONFIG.get(config.getClass());
        if (a == null) throw new IllegalArgumentException("unknown configuration " + config);
        return a;
    }

    /** The algorithm whose configuration class has this simple name ("Adam"), or null. */
    public static Algorithm<?> byTypeName(String typeName) {
        return BY_TYPE_NAME.get(typeName);
    }

    /** The configuration classes' names of the algorithms with 8-bit states ({@link Algorithm#hasQuantizedStates}), in registration order. */
    public static List<String> withQuantizedStates() {
        return all().stream().filter(Algorithm::hasQuantizedStates).map(Algorithm::typeName).toList();
    }

    /** Every algorithm's named variants ({@link Algorithm#variants()}), in registration order. */
    public static Map<String, OptimizerConfig> variants() {
        return merged(Algorithm::variants);
    }

    /** Every algorithm's benchmark configurations ({@link Algorithm#benchmarkConfigs()}), in registration order. */
    public static Map<String, OptimizerConfig> benchmarkConfigs() {
        return merged(Algorithm::benchmarkConfigs);
    }

    /** The {@code torch.optim} optimizer of {@code config} ({@link Algorithm#torchEquivalent}), or empty. */
    public static Optional<TorchOptimizer> torchEquivalent(OptimizerConfig config) {
        return of(config).torchEquivalentOf(config);
    }

    /**
     * Every algorithm's demo configurations for {@code problem} ({@link Algorithm#demoConfigs}), by
     * label, the algorithms in the order they were published ({@link Algorithm#publicationYear}).
     */
    public static Map<String, OptimizerConfig> demoConfigs(Algorithm.DemoProblem problem) {
        List<Algorithm<?>> byYear = new ArrayList<>(ALL);
        byYear.sort(Comparator.comparingInt(Algorithm::publicationYear)); // stable: ties stay in registration order
        return merged(byYear, a -> a.demoConfigs(problem));
    }

    private static Map<String, OptimizerConfig> merged(
            java.util.function.Function<Algorithm<?>, Map<String, ? extends OptimizerConfig>> table) {
        return merged(ALL, table);
    }

    private static Map<String, OptimizerConfig> merged(List<Algorithm<?>> algorithms,
            java.util.function.Function<Algorithm<?>, Map<String, ? extends OptimizerConfig>> table) {
        Map<String, OptimizerConfig> all = new LinkedHashMap<>();
        for (Algorithm<?> a : algorithms) {
            for (Map.Entry<String, ? extends OptimizerConfig> v : table.apply(a).entrySet()) {
                if (all.put(v.getKey(), v.getValue()) != null) throw new IllegalStateException("name " + v.getKey() + " twice");
            }
        }
        return Collections.unmodifiableMap(all);
    }
}
