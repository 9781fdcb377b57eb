package io.fusedopt.cuda;

import io.fusedopt.internal.StepProgram;

/**
 * A sharded rank's gradient statistics exchanged on the device ({@link NcclCommunicator#statisticsExchange}):
 * the CUDA step program all-gathers every rank's partial sums with NCCL, padded to the largest
 * rank's count, and {@code fusedopt_order_partials} puts them in the global registration order
 * before the finalize kernel adds them. No host round trip: the host form, {@link #total}, is not used.
 *
 * @param nccl          this rank's communicator
 * @param chunksPerRank each rank's number of partial sums (its tensors' chunks)
 * @param paddedChunks  the largest rank's count: each rank's part of the all-gather (at least 1, NCCL's smallest)
 * @param order         for each chunk in the global registration order, where its partial sum lies in
 *                      the gathered array: rank * paddedChunks + its index among the rank's
 */
record NcclStatisticsExchange(Nccl.Communicator nccl, int[] chunksPerRank, int paddedChunks, int[] order)
        implements StepProgram.StatisticsExchange {
    /** The exchange of partial sums whose owners, in the global registration order, are {@code chunkOwners}. */
    static NcclStatisticsExchange of(Nccl.Communicator nccl, int[] chunkOwners) {
        int[] chunksPerRank = new int[nccl.worldSize()];
        for (int owner : chunkOwners) {
            if (owner < 0 || owner >= chunksPerRank.length) {
                throw new IllegalArgumentException("chunk owner " + owner + " is outside [0, " + chunksPerRank.length + ")");
            }
            chunksPerRank[owner]++;
        }
        int padded = 1;
        for (int c : chunksPerRank) padded = Math.max(padded, c);
        int[] next = new int[chunksPerRank.length];
        int[] order = new int[chunkOwners.length];
        for (int c = 0; c < chunkOwners.length; c++) order[c] = chunkOwners[c] * padded + next[chunkOwners[c]]++;
        return new NcclStatisticsExchange(nccl, chunksPerRank, padded, order);
    }

    /** Never called: the CUDA step program exchanges on the device. */
    @Override
    public double total(double[] partials, int count) {
        throw new UnsupportedOperationException("the CUDA step program exchanges its statistics on the device");
    }
}
