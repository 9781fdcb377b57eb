package io.fusedopt.bench;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The benchmark side's copy of the fast CPU backend's thread team (io.fusedopt.cpu.WorkerTeam,
 * package-private there): the calling thread is worker 0 and {@code size - 1} daemon threads are
 * the others; items (chunks of the segment table) are claimed one at a time from a shared counter;
 * a waiting caller spins, then parks. {@link SameTrafficKernel} runs on it so that its time has the
 * same scheduling cost as a {@code CPU_FAST} step and differs only in the arithmetic. Kept apart
 * from src/main so that the backend can change its internals without breaking the benchmarks; if
 * it changes how it schedules chunks, this class must follow.
 */
final class ChunkTeam implements AutoCloseable {
    /** One item of a parallel loop, run by worker {@code worker} (0 to size - 1). */
    @FunctionalInterface
    interface Task {
        void run(int worker, int item);
    }

    /** As WorkerTeam: spins this often before parking while waiting for the other workers. */
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

    ChunkTeam(int size) {
        if (size < 1) throw new IllegalArgumentException("a chunk team needs at least 1 thread, got " + size);
        threads = new Thread[size - 1];
        for (int i = 0; i < threads.length; i++) {
            int worker = i + 1;
            threads[i] = new Thread(() -> workerLoop(worker), "same-traffic-" + worker);
            threads[i].setDaemon(true);
            threads[i].start();
        }
    }

    int size() {
        return threads.length + 1;
    }

    /** Runs {@code task} for items 0 to {@code items - 1} on every worker; rethrows the first failure. */
    synchronized void run(int items, Task task) {
        if (closed) throw new IllegalStateException("the chunk team is closed");
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

    @Override
    public void close() {
        closed = true;
        for (Thread t : threads) LockSupport.unpark(t);
    }
}
