package io.fusedopt;

import java.io.IOException;

/**
 * A checkpoint could not be saved or loaded: the message names the file and the problem (a
 * truncated or damaged file, a checksum mismatch, a checkpoint of another algorithm or other
 * tensors, an I/O error). A failed load changes nothing in the optimizer; a failed save leaves the
 * previous file as it was.
 */
public class CheckpointException extends IOException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
