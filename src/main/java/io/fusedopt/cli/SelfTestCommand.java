package io.fusedopt.cli;

import io.fusedopt.cpu.FastCpuEngine;
import io.fusedopt.cuda.CudaProbe;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "selftest", mixinStandardHelpOptions = true,
        description = {"Finds the GPU (or says why it cannot), runs every algorithm variant on random data on the CPU",
            "reference, the fast CPU backend and CUDA, and prints a bit-exact verdict per row.",
            "Exit status 0 when every comparison that ran is bit-exact, 1 otherwise."})
final class SelfTestCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--size", defaultValue = "70001", description = "Elements of the large tensor (default: ${DEFAULT-VALUE}).")
    int size;

    @Option(names = "--steps", defaultValue = "5", description = "Steps per run (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        CudaProbe.Result probe = CudaProbe.result();
        out.println("GPU:      " + (probe.available() ? probe.reason() + ": " + probe.kind() : "not used: " + probe.reason()));
        out.println("CPU_FAST: " + FastCpuEngine.vectorSupport());
        out.println();
        List<SelfTest.Row> rows = SelfTest.run(size, steps, seed, probe.available());
        String format = "%-38s %-30s %-26s %s%n";
        out.printf(format, "variant", "storage", "CPU_FAST vs CPU", "CUDA vs CPU");
        int exact = 0, ran = 0;
        for (SelfTest.Row row : rows) {
            out.printf(format, row.variant(), row.storage(), row.cpuFast().text(), row.cuda().text());
            for (SelfTest.Verdict v : new SelfTest.Verdict[] {row.cpuFast(), row.cuda()}) {
                if (!v.ran()) continue;
                ran++;
                if (v.bitExact()) exact++;
            }
        }
        out.println();
        out.printf("%d of %d comparisons bit-exact.%s%n", exact, ran,
                probe.available() ? "" : " Skipped: the CUDA column (" + probe.reason() + ").");
        out.flush();
        return exact == ran ? 0 : 1;
    }
}
