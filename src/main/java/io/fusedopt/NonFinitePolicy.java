package io.fusedopt;

/**
 * What a step does when the gradient holds a NaN or an infinity (after unscaling by the loss
 * scale). Checking costs one extra read of every gradient per step (a fused pass that also yields
 * the global norm), so it runs only when a policy other than {@link #PROPAGATE} or gradient
 * clipping asks for it.
 */
public enum NonFinitePolicy {
    /**
     * The default, as PyTorch's optimizers: no check; the update runs and NaN or infinity reach
     * the parameters and states.
     */
    PROPAGATE,
    /**
     * The whole step is skipped on the device: no parameter, state or step counter changes, and
     * {@link DeviceOptimizer#lastStep()} reports it. What a loss scaler wants: the step needs no
     * host synchronization, so it can be captured in a CUDA graph.
     */
    SKIP_STEP,
    /**
     * As {@link #SKIP_STEP}, and then {@link DeviceOptimizer#step()} throws
     * {@link NonFiniteGradientException}. Each step waits for the device to read the verdict.
     */
    THROW
}
