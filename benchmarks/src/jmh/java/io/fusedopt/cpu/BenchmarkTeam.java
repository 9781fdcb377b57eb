package io.fusedopt.cpu;

/**
 * The fast CPU backend's own thread team ({@link WorkerTeam}, package-private in src/main), opened
 * to the benchmarks: the same-traffic roofline must claim chunks and wait for workers exactly as a
 * {@code CPU_FAST} step does, so that it differs from the update only in the arithmetic. This file
 * lives in the benchmark sources (same package, same class loader) so that the library's public
 * API does not grow; if WorkerTeam changes, the roofline follows without a copy to keep in step.
 */
public final class BenchmarkTeam implements AutoCloseable {
    /** One item of a parallel loop, run by worker {@code worker} (0 to size - 1). */
    @FunctionalInterface
    public interface Task {
        void run(int worker, int item);
    }

    private final WorkerTeam team;

    /** The caller as worker 0 and {@code size - 1} daemon threads, as CPU_FAST with optCpuThreads(size). */
    public BenchmarkTeam(int size) {
        team = new WorkerTeam(size);
    }

    public int size() {
        return team.size();
    }

    /** Runs items 0 to {@code items - 1} on every worker; rethrows the first failure once all are done. */
    public void run(int items, Task task) {
        team.run(items, task::run);
    }

    @Override
    public void close() {
        team.close();
    }
}
