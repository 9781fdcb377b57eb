package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The registration is the one list of algorithms: it holds exactly the configuration classes
 * {@link OptimizerConfig} permits, each algorithm's variants reach every kernel it declares, and
 * every table derived from it (kernel codes, checkpoint type names) is consistent.
 */
class AlgorithmRegistryTest {

    @Test
    void everyPermittedConfigurationIsRegisteredOnce() {
        Set<Class<?>> registered = new HashSet<>();
        for (Algorithm<?> a : Algorithms.all()) assertTrue(registered.add(a.configType()), a.typeName() + " twice");
        assertEquals(Set.of(OptimizerConfig.class.getPermittedSubclasses()), registered);
    }

    @Test
    void kernelCodesAreIndicesIntoTheKernelList() {
        List<UpdateKernel> kernels = Algorithms.kernels();
        for (int i = 0; i < kernels.size(); i++) assertEquals(i, kernels.get(i).code(), kernels.get(i).name());
    }

    @Test
    void eachAlgorithmsVariantsReachEveryKernelItDeclaresAndNothingElse() {
        for (Algorithm<?> a : Algorithms.all()) {
            Set<UpdateKernel> reached = new HashSet<>();
            for (OptimizerConfig config : a.variants().values()) {
                assertSame(a, Algorithms.of(config));
                reached.add(UpdatePlan.of(config).kernel());
            }
            assertEquals(new HashSet<>(a.kernels()), reached, a.typeName());
            a.variants().forEach((name, config) -> assertTrue(name.startsWith(config.algorithm()), name));
        }
    }

    @Test
    void checkpointTypeNamesFindTheirAlgorithm() {
        for (Algorithm<?> a : Algorithms.all()) assertSame(a, Algorithms.byTypeName(a.typeName()));
    }

    @Test
    void benchmarkConfigurationsAreTheAlgorithmsDefaults() {
        for (Algorithm<?> a : Algorithms.all()) {
            // The elementwise benchmarks' tensors are one-dimensional: an algorithm of matrices has its own benchmark.
            assertTrue(a.takesMatrices() == a.benchmarkConfigs().isEmpty(), a.typeName());
            for (OptimizerConfig config : a.benchmarkConfigs().values()) assertSame(a, Algorithms.of(config));
        }
    }
}
