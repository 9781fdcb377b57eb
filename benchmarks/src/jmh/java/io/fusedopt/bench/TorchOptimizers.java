package io.fusedopt.bench;

import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.Json;
import io.fusedopt.internal.TorchOptimizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;

/**
 * The table the PyTorch comparisons read (benchmarks/torch_optim.py, benchmarks/gpu/torch_side_by_side.py):
 * for each benchmark name, the {@code torch.optim} optimizer of the configuration fusedopt measures
 * under that name ({@link StepBenchmark#config}), as its algorithm declares it
 * ({@code Algorithm.torchEquivalent}). One JSON object: name to {@code {"class": ..., "arguments": {...}}}.
 */
final class TorchOptimizers {
    private TorchOptimizers() {}

    /** The file name beside the case files that the scripts read. */
    static final String FILE = "torch-optimizers.json";

    /** The table for these benchmark names; refuses a name whose configuration PyTorch does not have. */
    static String json(Collection<String> names) {
        Json.Writer json = new Json.Writer(true).beginObject();
        for (String name : names) {
            TorchOptimizer torch = Algorithms.torchEquivalent(StepBenchmark.config(name)).orElseThrow(() ->
                    new IllegalArgumentException("benchmark '" + name + "' has no torch.optim equivalent: " + StepBenchmark.config(name)));
            json.name(name);
            torch.write(json);
        }
        return json.endObject().toString();
    }

    /** Writes {@link #json} to {@code file}. */
    static void write(Path file, Collection<String> names) throws IOException {
        Files.writeString(file, json(names));
    }
}
