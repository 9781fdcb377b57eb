package io.fusedopt;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/** What the library logs (System.Logger "io.fusedopt", backed by java.util.logging) while this is open. */
final class LogRecords extends Handler implements AutoCloseable {
    /** Held so that the logger, weakly referenced by java.util.logging, keeps this handler. */
    private final Logger logger = Logger.getLogger("io.fusedopt");
    private final List<LogRecord> records = new CopyOnWriteArrayList<>();

    LogRecords() {
        logger.addHandler(this);
    }

    /** The messages logged at {@code level} or above. */
    List<String> messages(Level level) {
        return records.stream().filter(r -> r.getLevel().intValue() >= level.intValue()).map(LogRecord::getMessage).toList();
    }

    @Override
    public void publish(LogRecord record) {
        records.add(record);
    }

    @Override
    public void flush() {}

    @Override
    public void close() {
        logger.removeHandler(this);
    }
}
