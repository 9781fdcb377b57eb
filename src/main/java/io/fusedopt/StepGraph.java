package io.fusedopt;

import io.fusedopt.internal.StepProgram;

/**
 * A step captured once and replayed: on CUDA a CUDA graph of the whole step (gradient check,
 * finalize, every update launch), launched with one call on the optimizer's stream; on the CPU a
 * plain step. Each {@link #replay()} is one step, exactly as {@link DeviceOptimizer#step()} would
 * take it (hyper-parameter and loss-scale changes apply; under {@link NonFinitePolicy#SKIP_STEP}
 * a non-finite gradient skips it). Closed by {@link #close()} or with its optimizer.
 */
public final class StepGraph implements AutoCloseable {
    private final DeviceOptimizer optimizer;
    private final StepProgram.CapturedStep captured;
    private boolean closed;

    StepGraph(DeviceOptimizer optimizer, StepProgram.CapturedStep captured) {
        this.optimizer = optimizer;
        this.captured = captured;
    }

    /** Takes one step by replaying the capture; only queues work on CUDA. */
    public void replay() {
        synchronized (optimizer) {
            if (closed) throw new IllegalStateException("the step graph is closed");
            optimizer.replay(captured);
        }
    }

    @Override
    public void close() {
        synchronized (optimizer) {
            if (closed) return;
            closed = true;
            captured.close();
            optimizer.forget(this);
        }
    }

    /** Closes the capture when the optimizer closes. */
    void closeQuietly() {
        if (closed) return;
        closed = true;
        captured.close();
    }
}
