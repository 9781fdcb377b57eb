package io.fusedopt;

import io.fusedopt.internal.Check;

/**
 * Thrown by {@link DeviceOptimizer#step()} under {@link NonFinitePolicy#THROW} when the gradient
 * held a NaN or an infinity. The step was skipped: parameters, states and the step counter are as
 * before it, and the optimizer stays usable.
 */
public final class NonFiniteGradientException extends RuntimeException {
    private final StepReport report;

    public NonFiniteGradientException(StepReport report) {
        super(messageOf(report));
        this.report = report;
    }

    private static String messageOf(StepReport report) {
        Check.notNull("report", report);
        return "the gradient holds a NaN or an infinity (global norm " + report.gradNorm() + "); step " + (report.step() + 1)
                + " was skipped and nothing changed";
    }

    /** The skipped step as the device saw it. */
    public StepReport report() {
        return report;
    }
}
