package io.fusedopt;

/**
 * The ranks of a sharded optimizer ({@link ShardedOptimizer}) and the one collective it needs: an
 * all-gather of bytes. Every rank of a world holds one communicator; every rank calls
 * {@link #allGather} the same number of times, in the same sequence. {@link LocalCommunicator}
 * gives a world of ranks in one JVM (threads), for the CPU backends and for tests;
 * {@link io.fusedopt.cuda.NcclCommunicator}, one rank per GPU over NCCL, for the CUDA backend, whose
 * steps also exchange through NCCL on the device (docs/sharding.md).
 */
public interface Communicator {
    /** This rank, in [0, {@link #worldSize()}). */
    int rank();

    /** The number of ranks, at least 1. */
    int worldSize();

    /**
     * Every rank's {@code data} (its own included), indexed by rank, once every rank has called this
     * with its own; the arrays returned are the caller's to keep. The lengths may differ by rank.
     *
     * @throws CommunicationException when a rank does not arrive in time (it failed, stopped or
     *     hangs), or the world was closed; the world cannot be used after that
     */
    byte[][] allGather(byte[] data);
}
