package io.fusedopt.cli;

/**
 * A run that cannot be done on this machine or failed while it ran (no usable GPU for
 * {@code --backend CUDA}, an I/O error, out of memory): its message is printed on one line and
 * the command exits with status 1, without a stack trace. Options refused for their value are
 * picocli's {@code ParameterException} instead (status 2).
 */
final class CommandFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    CommandFailure(String message) {
        super(message);
    }

    CommandFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
