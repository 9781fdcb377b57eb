package io.fusedopt.internal;

/**
 * A prepared step over a fixed set of tensors: the gradient statistics (when checked), the
 * finalize computation ({@link StepControl#finalizeStep}) and one update launch per kernel kind
 * and storage class. On CUDA every argument is a device pointer fixed at preparation, so a run
 * needs no host round trip and can be captured in a CUDA graph.
 */
public interface StepProgram extends AutoCloseable {

    /** Queues one step. */
    void run();

    /** The group table's hyper-parameters or flags changed: they apply from the next run. */
    void groupsChanged();

    /** Sets the control block's inputs; they apply from the next run. */
    void setInputs(float invGradScale, float maxGradNorm, boolean checkGrads, boolean skipNonFinite);

    /**
     * Sets the dynamic loss scaling inputs (GradScaler's rule on the device); call before
     * {@link #setInputs}, whose inverse scale is ignored while it is on.
     */
    void setDynamicScaling(boolean on, double growthFactor, double backoffFactor, int growthInterval);

    /** Sets the key of stochastic rounding's random bits; it applies from the next run. */
    void setRoundingSeed(long seed);

    /** Sets the applied and skipped step counters (a checkpoint restore). */
    void setCounters(long step, long skippedSteps);

    /** Starts or restores the dynamic loss scaler's state: its scale, growth tracker and counts. */
    void setScalerState(float scale, int growthTracker, long growths, long backoffs);

    /** A copy of the control block after the queued work (CUDA: waits for the stream). */
    StepControl readControl();

    /**
     * A replayable form of {@link #run()}: on CUDA a graph instantiated from a stream capture of
     * one run (no step is taken by capturing); on the CPU, run itself.
     */
    CapturedStep capture();

    /**
     * {@link #capture()} with more work in the same graph after the step: {@code alsoCaptured}
     * queues it on the capturing stream, whose raw handle it is given (a sharded step's NCCL
     * broadcasts of the params).
     *
     * @throws UnsupportedOperationException on a backend without graphs
     */
    default CapturedStep capture(java.util.function.LongConsumer alsoCaptured) {
        throw new UnsupportedOperationException("this backend's step is not captured with more work");
    }

    /**
     * From the next run, the gradient statistics' total is {@code exchange}'s (a sharded step,
     * docs/sharding.md): the program still computes the partial sums of its own chunks, in
     * registration order, and hands them over when the gradient is checked. Null: its own total.
     *
     * @throws UnsupportedOperationException on a backend that cannot exchange them yet
     */
    default void setStatisticsExchange(StatisticsExchange exchange) {
        throw new UnsupportedOperationException("this backend's step cannot exchange gradient statistics (sharding) yet");
    }

    /** How a sharded step turns one rank's partial sums into the global total. */
    interface StatisticsExchange {
        /**
         * The global sum of squares from this rank's {@code count} partial sums (its chunks in
         * registration order), called once per run whose gradient is checked, on every rank.
         */
        double total(double[] partials, int count);
    }

    /** Frees the program's memory (not the tensors). Idempotent. */
    @Override
    void close();

    /** A captured step: {@link #replay()} takes one step. */
    interface CapturedStep extends AutoCloseable {
        void replay();

        @Override
        void close();
    }
}
