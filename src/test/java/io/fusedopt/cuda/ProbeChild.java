package io.fusedopt.cuda;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.BackendUnavailableException;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Parameter;
import io.fusedopt.TensorBuffer;
import java.util.Arrays;

/**
 * The program {@link SimulatedPlatformTest} runs in a child JVM (with simulated os.name and
 * os.arch, its own temporary folder and class-load log): builds an optimizer on the backend named
 * by {@code args[0]}, takes three Adam steps, and prints one {@code key=value} line per finding.
 * A refused build prints {@code refused=} and the message instead.
 */
public final class ProbeChild {
    private ProbeChild() {}

    public static void main(String[] args) {
        Backend backend = Backend.valueOf(args[0]);
        float[] params;
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build()).optBackend(backend).build()) {
            System.out.println("backend=" + opt.backend());
            System.out.println("reason=" + opt.backendReason());
            params = threeSteps(opt);
        } catch (BackendUnavailableException e) {
            System.out.println("refused=" + e.getMessage());
            return;
        }
        // The same steps on the reference: AUTO's fallback computes the same bits.
        try (DeviceOptimizer reference = DeviceOptimizer.builder(Adam.builder().build()).optBackend(Backend.CPU).build()) {
            System.out.println("sameBitsAsReference=" + Arrays.equals(params, threeSteps(reference)));
        }
        System.out.println("params=" + Arrays.toString(params));
    }

    private static float[] threeSteps(DeviceOptimizer opt) {
        TensorBuffer w = opt.allocate(4), g = opt.allocate(4);
        w.copyFrom(new float[] {1f, -2f, 3f, 0.5f});
        Parameter p = opt.addGroup().add("w", w, g);
        for (int t = 0; t < 3; t++) {
            g.copyFrom(new float[] {0.5f, -1f, 2f, t});
            opt.step();
        }
        return p.param().toArray();
    }
}
