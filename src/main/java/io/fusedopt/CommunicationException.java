package io.fusedopt;

/**
 * A collective of a {@link Communicator} failed: a rank did not arrive in time (it failed, stopped or
 * hangs), or the world was closed. The world cannot be used after it; a sharded optimizer that
 * throws it changed nothing when the exchange came before the update (the gradient statistics,
 * the registration check), and updated only its own tensors when it came after (the params'
 * all-gather).
 */
public final class CommunicationException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** @param message what failed, naming the rank that saw it */
    public CommunicationException(String message) {
        super(message);
    }

    /**
     * @param message what failed, naming the rank that saw it
     * @param cause   the failure underneath
     */
    public CommunicationException(String message, Throwable cause) {
        super(message, cause);
    }
}
