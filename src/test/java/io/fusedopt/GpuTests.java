package io.fusedopt;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.cuda.CudaProbe;

/** The one place GPU tests decide to skip, with the probe's reason, printed once per run. */
final class GpuTests {
    private GpuTests() {}

    private static boolean announced;

    static synchronized void assumeGpu() {
        CudaProbe.Result probe = CudaProbe.result();
        if (!probe.available() && !announced) {
            announced = true;
            System.out.println("[fusedopt] GPU tests skipped: " + probe.reason());
        }
        assumeTrue(probe.available(), "GPU tests skipped: " + probe.reason());
    }
}
