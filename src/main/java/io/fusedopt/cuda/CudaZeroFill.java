package io.fusedopt.cuda;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Engine;
import io.fusedopt.internal.SegmentTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.function.ToLongFunction;
import jcuda.Pointer;
import jcuda.driver.CUfunction;

/**
 * Zeroes many device buffers of any formats with one launch of {@code fusedopt_zero_fill}
 * (kernels/convert.cu): each buffer is a segment of 16-bit units (all-zero bits are +0 in FP32,
 * BF16 and FP16), cut into the chunks of a {@link SegmentTable}; both tables live in device memory.
 */
final class CudaZeroFill implements Engine.ZeroFill {
    /** FoZeroSegment: base address, length in 16-bit units. */
    static final int SEGMENT_BYTES = 16;

    private final CudaEngine engine;
    private final int chunkCount;
    private long segments;
    private long chunks;
    private final CUfunction function;
    private final Pointer params;
    private final String call;
    private boolean closed;

    CudaZeroFill(CudaEngine engine, List<AbstractTensorBuffer> buffers, ToLongFunction<AbstractTensorBuffer> address) {
        this.engine = engine;
        long[] units = new long[buffers.size()];
        ByteBuffer segmentBytes = ByteBuffer.allocate(buffers.size() * SEGMENT_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < units.length; i++) {
            AbstractTensorBuffer b = buffers.get(i);
            units[i] = b.byteSize() / 2; // every element is 2 or 4 bytes
            segmentBytes.putLong(i * SEGMENT_BYTES, b.length() == 0 ? 0 : address.applyAsLong(b));
            segmentBytes.putLong(i * SEGMENT_BYTES + 8, units[i]);
        }
        SegmentTable table = SegmentTable.of(units);
        chunkCount = table.chunkCount();
        function = engine.modules().function("convert", "fusedopt_zero_fill");
        try {
            byte[] chunkBytes = DeviceSegmentTable.encodeChunks(table);
            segments = engine.upload(Pointer.to(segmentBytes.array()), segmentBytes.capacity(), "zero-fill segments");
            chunks = engine.upload(Pointer.to(chunkBytes), chunkBytes.length, "zero-fill chunks");
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        params = Pointer.to(Pointer.to(Driver.pointerAt(segments)), Pointer.to(Driver.pointerAt(chunks)),
                Pointer.to(new int[] {chunkCount}));
        call = "cuLaunchKernel(fusedopt_zero_fill, " + buffers.size() + " buffers, " + chunkCount + " chunks)";
    }

    @Override
    public void run() {
        if (closed) throw new IllegalStateException("the zero fill was closed");
        if (chunkCount == 0) return; // only empty buffers
        engine.launchOverChunks(function, chunkCount, params, call);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (!engine.isClosed()) {
            // A queued fill may still read the tables.
            int sync = engine.synchronizeQuietly();
            if (sync != 0) System.getLogger("io.fusedopt").log(System.Logger.Level.WARNING, "zero fill close: " + Driver.describe(sync));
        }
        if (segments != 0) engine.freeTable(segments);
        if (chunks != 0) engine.freeTable(chunks);
    }
}
