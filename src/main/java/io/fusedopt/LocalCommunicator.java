package io.fusedopt;

import io.fusedopt.internal.Check;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A world of ranks in one JVM: each rank is a thread holding one of the communicators
 * {@link #world} returns. An all-gather waits at a barrier until every rank has put its bytes
 * down, copies them all, and waits again so that no rank overwrites its slot before every rank has
 * copied. A rank that does not arrive within the timeout (it threw, returned or hangs) breaks the
 * world: every rank waiting then, and every later call, fails with a {@link CommunicationException}
 * instead of waiting forever.
 */
public final class LocalCommunicator implements Communicator, AutoCloseable {
    private final World world;
    private final int rank;

    private LocalCommunicator(World world, int rank) {
        this.world = world;
        this.rank = rank;
    }

    /**
     * The communicators of a new world of {@code worldSize} ranks, by rank.
     *
     * @param worldSize the number of ranks, at least 1
     * @param timeout   how long a rank waits at a collective for the others, more than zero
     * @throws IllegalArgumentException for a world size below 1 or a timeout not above zero
     */
    public static List<LocalCommunicator> world(int worldSize, Duration timeout) {
        if (worldSize < 1) throw new IllegalArgumentException("the world size must be at least 1, got " + worldSize);
        Check.notNull("timeout", timeout);
        if (timeout.isNegative() || timeout.isZero()) throw new IllegalArgumentException("the timeout must be more than zero, got " + timeout);
        World world = new World(worldSize, timeout);
        List<LocalCommunicator> ranks = new ArrayList<>(worldSize);
        for (int r = 0; r < worldSize; r++) ranks.add(new LocalCommunicator(world, r));
        return List.copyOf(ranks);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return world.slots.length;
    }

    @Override
    public byte[][] allGather(byte[] data) {
        Check.notNull("data", data);
        return world.allGather(rank, data);
    }

    /**
     * Breaks the world: ranks waiting at a collective, and every later call on any rank, fail with a
     * {@link CommunicationException}. Idempotent.
     */
    @Override
    public void close() {
        world.breakOff("rank " + rank + " closed the world");
    }

    /** What the ranks of one world share. */
    private static final class World {
        final byte[][] slots;
        final CyclicBarrier barrier;
        final Duration timeout;
        private volatile String broken; // why the world cannot be used, once it cannot

        World(int size, Duration timeout) {
            slots = new byte[size][];
            barrier = new CyclicBarrier(size);
            this.timeout = timeout;
        }

        byte[][] allGather(int rank, byte[] data) {
            requireUsable(rank);
            slots[rank] = data.clone();
            await(rank);
            byte[][] all = new byte[slots.length][];
            for (int r = 0; r < slots.length; r++) all[r] = slots[r].clone();
            await(rank); // nobody writes its slot for the next collective before everyone has copied
            return all;
        }

        private void requireUsable(int rank) {
            String why = broken;
            if (why != null) throw new CommunicationException("rank " + rank + ": the world is broken: " + why);
        }

        private void await(int rank) {
            try {
                barrier.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                breakOff("rank " + rank + " waited " + timeout + " at a collective for the other ranks");
                throw new CommunicationException("rank " + rank + " waited " + timeout + " at a collective for the other ranks:"
                        + " a rank failed, stopped or hangs before reaching it", e);
            } catch (BrokenBarrierException e) {
                String why = broken;
                throw new CommunicationException("rank " + rank + ": a collective was broken off: "
                        + (why != null ? why : "another rank timed out or was interrupted"), e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                breakOff("rank " + rank + " was interrupted at a collective");
                throw new CommunicationException("rank " + rank + " was interrupted at a collective", e);
            }
        }

        void breakOff(String why) {
            synchronized (this) {
                if (broken == null) broken = why;
            }
            barrier.reset(); // the ranks waiting now get BrokenBarrierException
        }
    }
}
