package io.fusedopt;

/**
 * Thrown by {@link DeviceOptimizer#step()} under {@link NonFinitePolicy#THROW} when the gradient
 * held a NaN or an infinity. The step was skipped: parameters, states and the step counter are as
 * before it, and the optimizer stays usable.
 */
public final class NonFiniteGradientException extends RuntimeException {
    private final StepReport report;

    public NonFiniteGradientException(StepReport report) {
        super("the gradient holds a NaN or an infinity (global norm " + report.gradNorm() + "); step " + (report.step() + 1)
                + " was skipped and nothing changed");
        this.report = report;
    }

    /** The skipped step as the device saw it. */
    public StepReport report() {
        return report;
    }
}
