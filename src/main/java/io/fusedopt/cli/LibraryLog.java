package io.fusedopt.cli;

import java.io.PrintWriter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * The library's log records (System.Logger "io.fusedopt", java.util.logging in the command line)
 * while a command runs: not the console's two-line records, but one line on the command's error
 * stream for a warning or worse. Its INFO records (AUTO's choice of backend) are not shown: each
 * command says which backend it runs on and why on its own line ({@link BackendChoice#howChosen()}).
 */
final class LibraryLog extends Handler implements AutoCloseable {
    /** Held so that the logger, weakly referenced by java.util.logging, keeps its settings while a command runs. */
    private final Logger logger = Logger.getLogger("io.fusedopt");
    private final PrintWriter err;
    private final boolean parentHandlersBefore;

    private LibraryLog(PrintWriter err) {
        this.err = err;
        setLevel(Level.WARNING);
        parentHandlersBefore = logger.getUseParentHandlers();
        logger.setUseParentHandlers(false);
        logger.addHandler(this);
    }

    /** Shows the library's warnings on {@code err}, one line each, until closed (which restores the logger). */
    static LibraryLog showOn(PrintWriter err) {
        return new LibraryLog(err);
    }

    @Override
    public void publish(LogRecord record) {
        if (!isLoggable(record)) return;
        String message = record.getMessage() == null ? "" : record.getMessage().replace('\n', ' ');
        err.println("fusedopt: " + record.getLevel().getName().toLowerCase(java.util.Locale.ROOT) + ": "
                + message.replaceFirst("^fusedopt: ", ""));
        err.flush();
    }

    @Override
    public void flush() {
        err.flush();
    }

    @Override
    public void close() {
        logger.removeHandler(this);
        logger.setUseParentHandlers(parentHandlersBefore);
    }
}
