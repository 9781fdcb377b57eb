package io.fusedopt.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed team of threads that runs the items of one parallel loop: the calling thread is worker 0
 * and {@code size - 1} daemon threads are the others; items are claimed one at a time from a shared
 * counter, so uneven items balance. Running a loop allocates nothing (the step path must not), and
 * waiting threads park rather than spin. One loop runs at a time ({@link #run} is synchronized).
 */
final class WorkerTeam implements AutoCloseable {
    /** One item of a parallel loop, run by worker {@code worker} (0 to size - 1: an index for per-worker scratch). */
    @FunctionalInterface
    interface Task {
        void run(int worker, int item);
    }

    /** Spins this often before parking while waiting for the other workers: short loops end sooner. */
    private static final int SPINS_BEFORE_PARK = 1 << 12;

    private final Thread[] threads;
    private final AtomicInteger nextItem = new AtomicInteger();
    private final AtomicInteger pendingWorkers = new AtomicInteger();
    private volatile long generation;
    private volatile boolean closed;
    private Task task;
    private int itemCount;
    private Thread caller;
    private volatile Throwable failure;

    WorkerTeam(int size) {
        if (size < 1) throw new IllegalArgumentException("a worker team needs at least 1 thread, got " + size);
        threads = new Thread[size - 1];
        for (int i = 0; i < threads.length; i++) {
            int worker = i + 1;
            threads[i] = new Thread(() -> workerLoop(worker), "fusedopt-cpu-" + worker);
            threads[i].setDaemon(true);
            threads[i].start();
        }
    }

    /** Threads that run items, the caller included. */
    int size() {
        return threads.length + 1;
    }

    /**
     * Runs {@code task} for items 0 to {@code items - 1} on every worker and returns when all are done.
     * The first exception a task throws is rethrown here once the loop has finished.
     */
    synchronized void run(int items, Task task) {
        if (closed) throw new IllegalStateException("the worker team is closed");
        if (threads.length == 0 || items <= 1) {
            for (int i = 0; i < items; i++) task.run(0, i);
            return;
        }
        this.task = task;
        this.itemCount = items;
        this.caller = Thread.currentThread();
        this.failure = null;
        nextItem.set(0);
        pendingWorkers.set(threads.length);
        generation++; // publishes the fields above to the workers
        for (Thread t : threads) LockSupport.unpark(t);
        claimItems(0);
        for (int spins = 0; pendingWorkers.get() != 0; spins++) {
            if (spins < SPINS_BEFORE_PARK) Thread.onSpinWait();
            else LockSupport.park(this);
        }
        this.task = null;
        Throwable t = failure;
        if (t != null) {
            failure = null;
            if (t instanceof RuntimeException r) throw r;
            if (t instanceof Error e) throw e;
            throw new IllegalStateException(t);
        }
    }

    private void claimItems(int worker) {
        Task current = task;
        int count = itemCount;
        for (int item; (item = nextItem.getAndIncrement()) < count; ) {
            try {
                current.run(worker, item);
            } catch (Throwable t) {
                if (failure == null) failure = t;
            }
        }
    }

    private void workerLoop(int worker) {
        long seen = 0;
        while (true) {
            long current;
            while ((current = generation) == seen) {
                if (closed) return;
                LockSupport.park(this);
            }
            seen = current;
            claimItems(worker);
            if (pendingWorkers.decrementAndGet() == 0) LockSupport.unpark(caller);
        }
    }

    /** Stops the worker threads (they finish the loop they are in first). Idempotent. */
    @Override
    public void close() {
        closed = true;
        for (Thread t : threads) LockSupport.unpark(t);
    }
}
