package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.cpu.FastCpuEngine;
import io.fusedopt.cuda.CudaProbe;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "selftest", mixinStandardHelpOptions = true, sortOptions = false,
        header = "Checks every algorithm variant bit for bit: the fast CPU backend and CUDA against the CPU reference.",
        description = {"Finds the GPU (or says why it cannot), runs every algorithm variant on random data on the CPU"
            + " reference, the fast CPU backend and CUDA, and prints a bit-exact verdict per row.",
            "Exit status 0 when every comparison that ran is bit-exact (and at least one ran), 1 otherwise."})
final class SelfTestCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--size", paramLabel = "<elements>", defaultValue = "70001", description = "Elements of the large tensor, a"
            + " number or a power such as 2^16, >= 1 and at most what this machine's memory holds (default: ${DEFAULT-VALUE}).")
    String size;

    @Option(names = "--steps", paramLabel = "<steps>", defaultValue = "5", description = "Steps per run, >= 1 (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--seed", paramLabel = "<seed>", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() {
        // Zero steps would compare the initial values, equal by construction: a pass that proves nothing.
        Inputs.requireAtLeast(spec, "--steps", steps, 1);
        CudaProbe.Result probe = CudaProbe.result();
        long requested = Inputs.parseSize(spec, "--size", size); // read as bench reads its sizes
        int elements = checkSize(requested, probe.available() ? BackendChoice.of(Backend.CUDA).memory() : null);
        PrintWriter out = spec.commandLine().getOut();
        out.println("GPU:      " + (probe.available() ? probe.reason() + ": " + probe.kind() : "not used: " + probe.reason()));
        out.println("CPU_FAST: " + FastCpuEngine.vectorSupport());
        out.println();
        List<SelfTest.Row> rows = SelfTest.run(elements, steps, seed, probe.available());
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
        if (ran == 0) out.println("No comparison ran: nothing was checked.");
        out.flush();
        return ran > 0 && exact == ran ? 0 : FusedOptCli.FAILED;
    }

    /**
     * Refuses a --size this machine cannot hold: the CPU reference's one Java array per tensor,
     * the heap the comparison's copies and the fast CPU backend's tensors need, and (with a
     * GPU) the device's free memory; the message names the tightest limit.
     *
     * @return {@code elements}, which then fits an int (a Java array's length)
     */
    int checkSize(long elements, BackendChoice.MemoryLimit device) {
        long max = BackendChoice.MemoryLimit.CPU_ELEMENTS_PER_TENSOR;
        String why = "the CPU reference keeps a tensor in one Java array";
        // The fast CPU backend's tensors are Java arrays too, alive beside the comparison's copies.
        long heap = Runtime.getRuntime().maxMemory();
        int heapPerElement = SelfTest.HEAP_BYTES_PER_ELEMENT + SelfTest.TENSOR_BYTES_PER_ELEMENT;
        if (heap / heapPerElement < max) {
            max = heap / heapPerElement;
            why = "the selftest needs up to " + SelfTest.HEAP_BYTES_PER_ELEMENT + " bytes of Java heap per element for its copies"
                    + " and " + SelfTest.TENSOR_BYTES_PER_ELEMENT + " for the fast CPU backend's tensors, and the heap (-Xmx) holds "
                    + heap + " bytes";
        }
        if (device != null && device.bytes() / SelfTest.TENSOR_BYTES_PER_ELEMENT < max) {
            max = device.bytes() / SelfTest.TENSOR_BYTES_PER_ELEMENT;
            why = "CUDA needs up to " + SelfTest.TENSOR_BYTES_PER_ELEMENT + " bytes per element and " + device.describe();
        }
        Inputs.requireRange(spec, "--size", elements, 1, max, why);
        return (int) elements;
    }
}
