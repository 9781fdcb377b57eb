package io.fusedopt.cli;

import io.fusedopt.Backend;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Writes PNG plots and a Markdown report: Adam's bias correction done right and wrong, the paths",
            "of six optimizers on a narrow valley, and loss curves of a small classifier trained with each."})
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--out", defaultValue = "fusedopt-demo", description = "Output folder (default: ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--backend", defaultValue = "AUTO", description = "${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    Backend backend;

    @Option(names = "--spiral-steps", defaultValue = "400", description = "Training steps per optimizer (default: ${DEFAULT-VALUE}).")
    int spiralSteps;

    @Override
    public Integer call() throws Exception {
        Demo.Result result = Demo.run(backend, out, 200, 40, spiralSteps);
        PrintWriter w = spec.commandLine().getOut();
        w.println("ran on " + result.device());
        for (String file : new String[] {Demo.BIAS_CORRECTION_PNG, Demo.PATHS_PNG, Demo.SPIRAL_PNG, Demo.REPORT}) {
            w.println("wrote " + out.resolve(file));
        }
        w.flush();
        return 0;
    }
}
