package io.fusedopt;

import java.util.ArrayList;
import java.util.List;

/** Test helper: runs one tensor through a sequence of gradients and returns the parameters. */
final class Trajectory {
    private Trajectory() {}

    /** The parameters after one step per entry of {@code grads}, on the CPU reference backend. */
    static float[] cpu(OptimizerConfig config, float[] initial, List<float[]> grads) {
        return withStates(Backend.CPU, config, initial, grads).get(0);
    }

    /** One element: the parameter after one step per gradient value. */
    static float[] cpu(OptimizerConfig config, float initial, float... grads) {
        List<float[]> steps = new ArrayList<>();
        for (float g : grads) steps.add(new float[] {g});
        return cpu(config, new float[] {initial}, steps);
    }

    /**
     * The parameters, then each state in {@link OptimizerConfig#stateKinds()} order, after one step
     * per entry of {@code grads} on {@code backend}.
     */
    static List<float[]> withStates(Backend backend, OptimizerConfig config, float[] initial, List<float[]> grads) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, config)) {
            TensorBuffer p = opt.allocate(initial.length);
            TensorBuffer g = opt.allocate(initial.length);
            p.copyFrom(initial);
            Parameter parameter = opt.addGroup().add("p", p, g);
            for (float[] grad : grads) {
                g.copyFrom(grad);
                opt.step();
            }
            List<float[]> result = new ArrayList<>(List.of(p.toArray()));
            for (StateKind kind : config.stateKinds()) result.add(parameter.state(kind).toArray());
            return result;
        }
    }
}
