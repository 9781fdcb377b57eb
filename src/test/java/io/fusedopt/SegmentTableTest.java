package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.fusedopt.internal.SegmentTable;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The segment table, and one launch over many tensors giving what each tensor alone gives. */
class SegmentTableTest {
    private static final long CHUNK = SegmentTable.CHUNK_ELEMENTS;

    @Test
    void edgeCases() {
        assertEquals(0, SegmentTable.of(new long[0]).chunkCount(), "no tensors, no work");
        SegmentTable one = SegmentTable.of(new long[] {1});
        assertEquals(1, one.chunkCount());
        assertEquals(0, one.start(0));
        assertEquals(1, one.end(0));
        SegmentTable withEmpty = SegmentTable.of(new long[] {0, 5, 0});
        assertEquals(1, withEmpty.chunkCount(), "empty tensors have no chunks");
        assertEquals(1, withEmpty.tensor(0));
        SegmentTable boundary = SegmentTable.of(new long[] {CHUNK, CHUNK + 1});
        assertEquals(3, boundary.chunkCount());
        assertEquals(CHUNK, boundary.end(0));
        assertEquals(CHUNK, boundary.start(2));
        assertEquals(CHUNK + 1, boundary.end(2));
    }

    @Test
    void tensorsOverTwoToTheThirtyOneElementsNeedNoAllocationToCheck() {
        long big = (1L << 31) + 5;
        SegmentTable t = SegmentTable.of(new long[] {3, big, 7});
        long bigChunks = (big + CHUNK - 1) / CHUNK;
        assertEquals(1 + bigChunks + 1, t.chunkCount());
        int last = (int) bigChunks; // the last chunk of the big tensor
        assertEquals(1, t.tensor(last));
        assertEquals(1L << 31, t.start(last), "starts beyond 2^31 are exact");
        assertEquals(big, t.end(last));
        assertEquals(2, t.tensor(t.chunkCount() - 1));
        assertCoversExactlyOnce(t);
    }

    @Test
    void randomTablesCoverEveryElementExactlyOnceInOrder() {
        Random random = new Random(9);
        for (int trial = 0; trial < 50; trial++) {
            long[] lengths = new long[1 + random.nextInt(300)];
            for (int i = 0; i < lengths.length; i++) {
                lengths[i] = random.nextInt(4) == 0 ? random.nextInt(3 * (int) CHUNK) : random.nextInt(100);
            }
            assertCoversExactlyOnce(SegmentTable.of(lengths));
        }
    }

    private static void assertCoversExactlyOnce(SegmentTable t) {
        long[] next = new long[t.tensorCount()];
        int previousTensor = 0;
        for (int c = 0; c < t.chunkCount(); c++) {
            int tensor = t.tensor(c);
            assertEquals(true, tensor >= previousTensor, "chunks are in tensor order");
            assertEquals(next[tensor], t.start(c), "chunk " + c + " starts where the previous one ended");
            assertEquals(true, t.end(c) > t.start(c) && t.end(c) - t.start(c) <= CHUNK);
            next[tensor] = t.end(c);
            previousTensor = tensor;
        }
        for (int i = 0; i < t.tensorCount(); i++) assertEquals(t.length(i), next[i], "tensor " + i + " fully covered");
    }

    /**
     * Thousands of tensors of awkward sizes in many groups (more than one launch carries) give,
     * bit for bit, what each tensor gives when it is optimized alone.
     */
    @Test
    void oneLaunchOverManyTensorsEqualsEachTensorAlone() {
        Random random = new Random(4);
        int groups = 40;
        List<float[]> initial = new ArrayList<>();
        List<List<float[]>> grads = new ArrayList<>();
        int[] sizes = new int[2000];
        for (int i = 0; i < sizes.length; i++) {
            sizes[i] = i % 500 == 7 ? (int) CHUNK * 2 + 3 : 1 + random.nextInt(i % 3 == 0 ? 2000 : 9);
            initial.add(ReferencePropertiesTest.randomVector(sizes[i], 100 + i));
            grads.add(ReferencePropertiesTest.randomGradients(sizes[i], 3, 1f, 200 + i));
        }
        Adam base = Adam.adamW().optLearningRate(1e-2).optAmsgrad(true).build();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, base)) {
            List<ParamGroup> gs = new ArrayList<>();
            for (int g = 0; g < groups; g++) gs.add(opt.addGroup(base.withLearningRate(1e-2 * (1 + g))));
            List<TensorBuffer> ps = new ArrayList<>();
            List<TensorBuffer> dps = new ArrayList<>();
            for (int i = 0; i < sizes.length; i++) {
                TensorBuffer p = opt.allocate(sizes[i]);
                TensorBuffer g = opt.allocate(sizes[i]);
                p.copyFrom(initial.get(i));
                gs.get(i % groups).add("t" + i, p, g);
                ps.add(p);
                dps.add(g);
            }
            for (int step = 0; step < 3; step++) {
                for (int i = 0; i < sizes.length; i++) dps.get(i).copyFrom(grads.get(i).get(step));
                opt.step();
            }
            for (int i = 0; i < sizes.length; i += 37) {
                float[] alone = Trajectory.cpu(base.withLearningRate(1e-2 * (1 + i % groups)), initial.get(i), grads.get(i));
                assertArrayEquals(alone, ps.get(i).toArray(), "tensor " + i + " of " + sizes[i] + " elements");
            }
            int big = 7;
            assertArrayEquals(Trajectory.cpu(base.withLearningRate(1e-2 * (1 + big % groups)), initial.get(big), grads.get(big)),
                    ps.get(big).toArray(), "the multi-chunk tensor");
        }
    }
}
