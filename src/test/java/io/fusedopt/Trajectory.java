package io.fusedopt;

import java.util.List;

/** Test helper: runs one tensor through a sequence of gradients and returns the parameters. */
final class Trajectory {
    private Trajectory() {}

    /** The parameters after one step per entry of {@code grads}, on the CPU reference backend. */
    static float[] cpu(OptimizerConfig config, float[] initial, List<float[]> grads) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, config)) {
            TensorBuffer p = opt.allocate(initial.length);
            TensorBuffer g = opt.allocate(initial.length);
            p.copyFrom(initial);
            opt.addGroup().add("p", p, g);
            for (float[] grad : grads) {
                g.copyFrom(grad);
                opt.step();
            }
            return p.toArray();
        }
    }

    /** One element: the parameter after one step per gradient value. */
    static float[] cpu(OptimizerConfig config, float initial, float... grads) {
        List<float[]> steps = new java.util.ArrayList<>();
        for (float g : grads) steps.add(new float[] {g});
        return cpu(config, new float[] {initial}, steps);
    }
}
