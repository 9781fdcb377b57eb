package io.fusedopt;

/**
 * What the scheduler step {@code n} of a learning-rate schedule ({@link ParamGroup#setSchedule})
 * counts: the optimizer's applied steps, or every step taken, skipped ones included. The two differ
 * only when steps are skipped ({@link NonFinitePolicy#SKIP_STEP}, {@link NonFinitePolicy#THROW},
 * dynamic loss scaling); chosen with {@link DeviceOptimizer.Builder#optScheduleClock}.
 */
public enum ScheduleClock {
    /**
     * The default: a step uses the factor at {@code n} = the steps applied before it, so a step
     * skipped for a non-finite gradient does not advance the schedule (as PyTorch's
     * {@code scheduler.step()} called only after an applied {@code optimizer.step()}).
     */
    APPLIED_STEPS,

    /**
     * A step uses the factor at {@code n} = the steps taken before it, applied or skipped (the
     * iterations of the training loop), as PyTorch's usual loop with {@code GradScaler}, which calls
     * {@code scheduler.step()} every iteration whether {@code scaler.step(optimizer)} skipped the
     * update or not. Each tensor's own step count (bias corrections) still counts applied steps only.
     */
    ITERATIONS
}
