package io.fusedopt;

import io.fusedopt.cli.VariantCatalog;
import java.util.Map;

/** Every algorithm variant the library implements, by name: the list equivalence tests run over. */
final class Variants {
    private Variants() {}

    static Map<String, OptimizerConfig> all() {
        return VariantCatalog.all();
    }
}
