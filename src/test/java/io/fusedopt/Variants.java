package io.fusedopt;

import io.fusedopt.cli.VariantCatalog;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/** Every algorithm variant the library implements, by name: the list equivalence tests run over. */
final class Variants {
    private Variants() {}

    /**
     * Every variant of the elementwise algorithms. The algorithms that take matrices (Muon: its
     * tensors need two-dimensional shapes, and its products would cost the emulator minutes at
     * these suites' sizes) have their own suites (MuonTest, CudaMuonTest).
     */
    static Map<String, OptimizerConfig> elementwise() {
        Map<String, OptimizerConfig> out = new LinkedHashMap<>();
        VariantCatalog.all().forEach((name, config) -> {
            if (!Algorithms.of(config).takesMatrices()) out.put(name, config);
        });
        return out;
    }

    /** The variants of the algorithms with 8-bit states ({@link StateQuantization#BLOCKWISE_8BIT}). */
    static Map<String, OptimizerConfig> withQuantizedStates() {
        Map<String, OptimizerConfig> out = new LinkedHashMap<>();
        elementwise().forEach((name, config) -> {
            if (Algorithms.of(config).hasQuantizedStates()) out.put(name, config);
        });
        return out;
    }

    /**
     * The first variant of each kernel: for the tests of what does not depend on an algorithm's
     * flags but on its kernel (the storage formats and master weights of its mixed entry point, the
     * gradient pipeline around it, operands across memory blocks), where running every variant
     * would only repeat the same code paths and cost CI minutes. Every variant's own flags are held
     * by the tests over {@link #elementwise()} (CudaEquivalenceTest, FastCpuBackendTest, MixedPrecisionTest).
     */
    static Map<String, OptimizerConfig> onePerKernel() {
        Map<String, OptimizerConfig> out = new LinkedHashMap<>();
        Set<UpdateKernel> seen = new HashSet<>();
        for (Map.Entry<String, OptimizerConfig> v : elementwise().entrySet()) {
            if (seen.add(UpdatePlan.of(v.getValue()).kernel())) out.put(v.getKey(), v.getValue());
        }
        return out;
    }
}
