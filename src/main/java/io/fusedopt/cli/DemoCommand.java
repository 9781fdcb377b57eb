package io.fusedopt.cli;

import io.fusedopt.Backend;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "demo", mixinStandardHelpOptions = true, sortOptions = false,
        header = "Writes PNG plots and a Markdown report of what optimizers do, every step taken by fusedopt.",
        description = {"Adam's bias correction done right and wrong, the paths of the optimizers on a narrow valley,"
            + " loss curves of a small classifier trained with each, and the same classifier with its weights in fp32,"
            + " bf16 with fp32 masters, bf16 rounded to nearest and bf16 rounded stochastically (5 times --spiral-steps"
            + " steps); written to --out.",
            "The output folder is checked before the run: it must exist and be writable, or be creatable (it is"
            + " created before the run; a folder that cannot be created is a refused value, exit status 2)."})
final class DemoCommand implements Callable<Integer> {
    /** The loss chart keeps and draws every step of six optimizers: a bound keeps its memory and drawing small. */
    static final int MAX_SPIRAL_STEPS = 100_000;

    @Spec
    CommandSpec spec;

    @Option(names = "--out", paramLabel = "<folder>", defaultValue = "fusedopt-demo", description = "Output folder, created if missing"
            + " (default: ${DEFAULT-VALUE}).")
    Path out;

    @Option(names = "--backend", paramLabel = "<backend>", defaultValue = "AUTO",
            description = "${COMPLETION-CANDIDATES}, in any case (default: ${DEFAULT-VALUE}).")
    Backend backend;

    @Option(names = "--spiral-steps", paramLabel = "<steps>", defaultValue = "400", description = "Training steps per optimizer, from 1 to "
            + MAX_SPIRAL_STEPS + " (default: ${DEFAULT-VALUE}).")
    int spiralSteps;

    @Override
    public Integer call() throws Exception {
        Inputs.requireRange(spec, "--spiral-steps", spiralSteps, 1, MAX_SPIRAL_STEPS, "the loss chart draws every step");
        Inputs.checkOutputFolder(spec, "--out", out, Demo.FILES);
        BackendChoice choice = BackendChoice.of(backend);
        // Created before the run, so that a folder the file system refuses is a refused option (status 2).
        Inputs.createFolder(spec, "--out", out);
        Demo.Result result = Demo.run(choice.backend(), out, 200, 40, spiralSteps, Demo.MEMORY_SAVERS_STEPS_PER_SPIRAL_STEP * spiralSteps);
        PrintWriter w = spec.commandLine().getOut();
        w.println("ran on " + result.device() + choice.howChosen());
        for (String file : Demo.FILES) w.println("wrote " + out.resolve(file));
        w.flush();
        return 0;
    }
}
