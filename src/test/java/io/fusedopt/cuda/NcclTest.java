package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.CudaException;
import io.fusedopt.GpuTests;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * NCCL through the JNA binding, two ranks on two devices (threads of this JVM): every collective
 * the sharded optimizer's CUDA path needs gives its defined result, bit for bit (with two ranks a
 * sum is one rounding in any order, so a real NCCL must agree too), queued on each engine's
 * stream after the work before it; bad arguments fail with NCCL's result named. On the CUDA
 * emulator, against its NCCL double; on a real machine, where NCCL is installed and two GPUs exist.
 */
@Tag("gpu")
class NcclTest {
    @BeforeEach
    void requireNccl() {
        GpuTests.assumeGpu();
        NcclSupport.Status status = NcclSupport.status();
        if (GpuTests.onEmulator()) {
            assertTrue(status.available(), "the emulator ships an NCCL double, yet: " + status.reason());
        } else {
            assumeTrue(status.available(), status.reason());
            assumeTrue(CudaProbe.result().deviceCount() >= 2, "two ranks need two GPUs");
        }
    }

    /** What one rank does with its engine and communicator. */
    private interface RankWork<T> {
        T run(CudaEngine engine, Nccl.Communicator comm) throws Exception;
    }

    /** {@code work} on two ranks (devices 0 and 1, one thread each) of a new world; the results by rank. */
    private static <T> List<T> onTwoRanks(RankWork<T> work) throws Exception {
        byte[] id = Nccl.uniqueId();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (CudaEngine engine = new CudaEngine(rank); Nccl.Communicator comm = new Nccl.Communicator(engine, 2, rank, id)) {
                        return work.run(engine, comm);
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : futures) out.add(f.get());
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    private static long upload(CudaEngine engine, float[] values) {
        return engine.upload(jcuda.Pointer.to(values), (long) values.length * Float.BYTES, "test floats");
    }

    private static long upload(CudaEngine engine, double[] values) {
        return engine.upload(jcuda.Pointer.to(values), (long) values.length * Double.BYTES, "test doubles");
    }

    private static float[] downloadFloats(CudaEngine engine, long address, int n) {
        engine.synchronize();
        float[] out = new float[n];
        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(out), Driver.pointerAt(address), (long) n * Float.BYTES), "cuMemcpyDtoH");
        return out;
    }

    private static double[] downloadDoubles(CudaEngine engine, long address, int n) {
        engine.synchronize();
        double[] out = new double[n];
        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(out), Driver.pointerAt(address), (long) n * Double.BYTES), "cuMemcpyDtoH");
        return out;
    }

    @Test
    void theRanksKnowTheirWorldAndDevice() throws Exception {
        List<int[]> seen = onTwoRanks((engine, comm) -> new int[] {comm.rank(), comm.worldSize(), comm.device()});
        assertArrayEquals(new int[] {0, 2, 0}, seen.get(0));
        assertArrayEquals(new int[] {1, 2, 1}, seen.get(1));
    }

    /** All-gather of doubles (the gradient statistics' partial sums) and of floats (the params), in place too. */
    @Test
    void allGatherPutsEachRanksPartAtItsOffset() throws Exception {
        List<double[]> gathered = onTwoRanks((engine, comm) -> {
            double[] mine = {comm.rank() + 0.25, -comm.rank() - 1e300, Double.NaN};
            long send = upload(engine, mine);
            long recv = upload(engine, new double[6]);
            comm.allGather(send, recv, 3, Nccl.DataType.FLOAT64);
            return downloadDoubles(engine, recv, 6);
        });
        for (double[] g : gathered) {
            assertArrayEquals(new double[] {0.25, -1e300, Double.NaN, 1.25, -1 - 1e300, Double.NaN}, g);
        }
        List<float[]> inPlace = onTwoRanks((engine, comm) -> {
            float[] buffer = new float[4];
            buffer[2 * comm.rank()] = 10 * comm.rank() + 1;
            buffer[2 * comm.rank() + 1] = 10 * comm.rank() + 2;
            long recv = upload(engine, buffer);
            comm.allGather(recv + 2L * comm.rank() * Float.BYTES, recv, 2, Nccl.DataType.FLOAT32);
            return downloadFloats(engine, recv, 4);
        });
        for (float[] g : inPlace) assertArrayEquals(new float[] {1, 2, 11, 12}, g);
    }

    /** Sums (one float32 rounding of two values), averages and a reduce-scatter, after the copies queued before them. */
    @Test
    void reductionsAndBroadcast() throws Exception {
        float a = 1e8f, b = 3f; // 1e8 + 3 rounds to 100000000 + 4 in float32
        List<float[]> results = onTwoRanks((engine, comm) -> {
            float[] mine = comm.rank() == 0 ? new float[] {a, 1f, 0.1f, -0f} : new float[] {b, 2f, 0.2f, -0f};
            long send = upload(engine, new float[4]);
            // Queued before the collective on the same stream: the collective must see it.
            Driver.check(JCudaDriver.cuMemcpyHtoDAsync(Driver.pointerAt(send), Pointer.to(mine), 16, engine.stream()), "cuMemcpyHtoDAsync");
            long sum = upload(engine, new float[4]);
            long average = upload(engine, new float[2]);
            long broadcast = upload(engine, new float[4]);
            comm.allReduce(send, sum, 4, Nccl.DataType.FLOAT32, Nccl.ReduceOp.SUM);
            comm.reduceScatter(send, average, 2, Nccl.DataType.FLOAT32, Nccl.ReduceOp.AVG);
            comm.broadcast(send, broadcast, 4, Nccl.DataType.FLOAT32, 1);
            float[] out = new float[10];
            System.arraycopy(downloadFloats(engine, sum, 4), 0, out, 0, 4);
            System.arraycopy(downloadFloats(engine, average, 2), 0, out, 4, 2);
            System.arraycopy(downloadFloats(engine, broadcast, 4), 0, out, 6, 4);
            return out;
        });
        float[] sum = {a + b, 3f, 0.1f + 0.2f, -0f + -0f}; // -0 + -0 is -0
        for (int r = 0; r < 2; r++) {
            float[] got = results.get(r);
            for (int i = 0; i < 4; i++) assertEquals(Float.floatToRawIntBits(sum[i]), Float.floatToRawIntBits(got[i]), "sum " + i);
            float[] expectedAverage = r == 0 ? new float[] {(a + b) / 2, 1.5f} : new float[] {(0.1f + 0.2f) / 2, -0f};
            for (int i = 0; i < 2; i++) {
                assertEquals(Float.floatToRawIntBits(expectedAverage[i]), Float.floatToRawIntBits(got[4 + i]), "rank " + r + " average " + i);
            }
            assertArrayEquals(new float[] {b, 2f, 0.2f, -0f}, java.util.Arrays.copyOfRange(got, 6, 10), "broadcast from rank 1");
        }
    }

    @Test
    void badArgumentsNameTheCallAndNcclsResult() throws Exception {
        List<String> messages = onTwoRanks((engine, comm) -> {
            long buffer = upload(engine, new float[2]);
            CudaException e = assertThrows(CudaException.class, () -> comm.broadcast(buffer, buffer, 2, Nccl.DataType.FLOAT32, 5));
            return e.getMessage();
        });
        for (String m : messages) {
            assertTrue(m.startsWith("ncclBroadcast(2 FLOAT32, root 5) failed: ncclInvalidArgument (4)"), m);
        }
        try (CudaEngine engine = new CudaEngine(0)) {
            assertThrows(IllegalArgumentException.class, () -> new Nccl.Communicator(engine, 2, 2, Nccl.uniqueId()));
            assertThrows(IllegalArgumentException.class, () -> new Nccl.Communicator(engine, 0, 0, Nccl.uniqueId()));
            assertThrows(IllegalArgumentException.class, () -> new Nccl.Communicator(engine, 1, 0, new byte[5]));
        }
        assertEquals("2.27.7", Nccl.versionText(22707));
    }
}
