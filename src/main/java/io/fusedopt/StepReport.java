package io.fusedopt;

/**
 * What the last step did, read from the step's control block ({@link DeviceOptimizer#lastStep()}).
 *
 * @param step the number of applied steps (the t of the last applied step)
 * @param skippedSteps how many steps were skipped for a non-finite gradient so far
 * @param skipped the last step changed nothing (a non-finite gradient under
 *     {@link NonFinitePolicy#SKIP_STEP} or {@link NonFinitePolicy#THROW})
 * @param foundNonFinite the last step's gradient held a NaN or an infinity (only known when checked)
 * @param gradNorm the global L2 norm of the last step's unscaled gradient, in double summed in
 *     a fixed order and rounded to float32; NaN when the gradient was not checked
 * @param clipCoefficient the factor the gradient was multiplied by for clipping (1 when not clipped).
 *     A skipped step reports the factor it computed, though it applied nothing: 0 for an infinite
 *     norm and NaN for a NaN one when clipping is on, else 1 (never the previous step's)
 */
public record StepReport(long step, long skippedSteps, boolean skipped, boolean foundNonFinite, float gradNorm,
                         float clipCoefficient) {}
