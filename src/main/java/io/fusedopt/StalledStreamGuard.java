package io.fusedopt;

import java.io.IOException;
import java.io.InputStream;

/**
 * The stream a checkpoint load reads, refusing one that stops delivering: {@code read(byte[], int,
 * int)} must block until a byte arrives, return -1 at the end or throw, but a broken stream (a
 * non-blocking source behind a blocking interface) may return 0 bytes again and again. Every loop
 * that reads until it has what it needs ({@link InputStream#readNBytes(int)} included) would then
 * spin for ever, holding the optimizer's lock; this turns that into a {@link CheckpointException}.
 * An {@link InputStream}, not a {@code FilterInputStream}, so that every bulk read it inherits goes
 * through {@link #read(byte[], int, int)}, never straight to the source. Never closes the source.
 */
final class StalledStreamGuard extends InputStream {
    /**
     * Reads of 0 bytes in a row after which the stream counts as stalled. A stream that returns 0
     * breaks its contract; a few in a row are tolerated, and this many take microseconds.
     */
    static final int MAX_EMPTY_READS = 1000;

    private final InputStream in;
    private final String name;
    /** Bytes delivered so far (for the message). */
    private long position;

    StalledStreamGuard(InputStream in, String name) {
        this.in = in;
        this.name = name;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (len == 0) return 0;
        for (int empty = 0; empty < MAX_EMPTY_READS; empty++) {
            int n = in.read(b, off, len);
            if (n != 0) {
                if (n > 0) position += n;
                return n;
            }
        }
        throw new CheckpointException(name + ": the stream returned 0 bytes " + MAX_EMPTY_READS + " times in a row at byte "
                + position + " (a read must wait for data, end with -1 or throw); refused rather than waiting for ever");
    }

    @Override
    public int read() throws IOException {
        int b = in.read();
        if (b >= 0) position++;
        return b;
    }
}
