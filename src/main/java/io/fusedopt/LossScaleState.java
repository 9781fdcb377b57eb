package io.fusedopt;

/**
 * The dynamic loss scaler's state, read from the step's control block
 * ({@link DeviceOptimizer#lossScaleState()}) and saved in checkpoints.
 *
 * @param scale the scale the next step's gradient is read with (float32)
 * @param growthTracker clean steps since the last growth or backoff
 * @param growths how many times the scale grew
 * @param backoffs how many times the scale backed off (each for a skipped step)
 */
public record LossScaleState(float scale, int growthTracker, long growths, long backoffs) {}
