package io.fusedopt.internal;

import io.fusedopt.OptimizerConfig;
import io.fusedopt.internal.algorithms.AdagradAlgorithm;
import io.fusedopt.internal.algorithms.AdamAlgorithm;
import io.fusedopt.internal.algorithms.LionAlgorithm;
import io.fusedopt.internal.algorithms.MomentumAlgorithm;
import io.fusedopt.internal.algorithms.RAdamAlgorithm;
import io.fusedopt.internal.algorithms.RmsPropAlgorithm;
import io.fusedopt.internal.algorithms.SgdAlgorithm;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The registration of every algorithm: the one list that names them. Every table that enumerates
 * algorithms (kernels, the checkpoint codec's types, the variant catalog, the benchmarks' and the
 * command line's lists) derives from it; {@code AlgorithmRegistryTest} holds it equal to the
 * classes {@link OptimizerConfig} permits.
 */
public final class Algorithms {
    private Algorithms() {}

    private static final List<Algorithm<?>> ALL = List.of(
            new SgdAlgorithm(),
            new MomentumAlgorithm(),
            new RmsPropAlgorithm(),
            new AdamAlgorithm(),
            new AdagradAlgorithm(),
            new RAdamAlgorithm(),
            new LionAlgorithm());

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

    /** Every algorithm's named variants ({@link Algorithm#variants()}), in registration order. */
    public static Map<String, OptimizerConfig> variants() {
        return merged(Algorithm::variants);
    }

    /** Every algorithm's benchmark configurations ({@link Algorithm#benchmarkConfigs()}), in registration order. */
    public static Map<String, OptimizerConfig> benchmarkConfigs() {
        return merged(Algorithm::benchmarkConfigs);
    }

    private static Map<String, OptimizerConfig> merged(
            java.util.function.Function<Algorithm<?>, Map<String, ? extends OptimizerConfig>> table) {
        Map<String, OptimizerConfig> all = new LinkedHashMap<>();
        for (Algorithm<?> a : ALL) {
            for (Map.Entry<String, ? extends OptimizerConfig> v : table.apply(a).entrySet()) {
                if (all.put(v.getKey(), v.getValue()) != null) throw new IllegalStateException("name " + v.getKey() + " twice");
            }
        }
        return Collections.unmodifiableMap(all);
    }
}
