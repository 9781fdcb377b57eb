package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.Safetensors;
import io.fusedopt.internal.UpdatePlan;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Saving and loading an optimizer's state as safetensors ({@link DeviceOptimizer#save},
 * {@link DeviceOptimizer#load}). One tensor per param ({@code name/param}), master weights
 * ({@code name/master}) and state ({@code name/exp_avg}, ...), each with a CRC32C in the metadata,
 * which also holds the format version, the algorithm, every group's hyper-parameters, the step
 * counters, the loss scale and the storage formats.
 */
final class Checkpoint {
    private Checkpoint() {}

    static final String FORMAT = "fusedopt-optimizer-state";
    static final int VERSION = 1;
    /** Elements per copy between a buffer and the file. */
    private static final int BLOCK = 1 << 20;

    /** Where a save writes its bytes; the file system in production, a failing sink in tests. */
    interface Sink extends AutoCloseable {
        void write(ByteBuffer bytes) throws IOException;

        /** Flushes the bytes to stable storage. */
        void sync() throws IOException;

        @Override
        void close() throws IOException;
    }

    interface SinkFactory {
        Sink open(Path file) throws IOException;
    }

    static final SinkFactory FILES = file -> {
        FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
        return new Sink() {
            @Override public void write(ByteBuffer bytes) throws IOException {
                while (bytes.hasRemaining()) channel.write(bytes);
            }
            @Override public void sync() throws IOException { channel.force(true); }
            @Override public void close() throws IOException { channel.close(); }
        };
    };

    /** One tensor of the checkpoint and the buffer behind it. */
    private record Item(String key, String parameter, int group, AbstractTensorBuffer buffer) {}

    private static List<Item> items(DeviceOptimizer opt) {
        List<Item> items = new ArrayList<>();
        for (ParamGroup group : opt.groups()) {
            for (Parameter p : group.parameterList()) {
                items.add(new Item(p.name() + "/param", p.name(), group.index(), p.paramBuffer()));
                if (p.masterBuffer() != null) items.add(new Item(p.name() + "/master", p.name(), group.index(), p.masterBuffer()));
                for (Map.Entry<StateKind, AbstractTensorBuffer> s : p.stateBuffers().entrySet()) {
                    items.add(new Item(p.name() + "/" + s.getKey().stateName(), p.name(), group.index(), s.getValue()));
                }
            }
        }
        return items;
    }

    /** Writes the checkpoint to a temporary file beside {@code file}, syncs it, renames it over {@code file}, syncs the folder. */
    static void save(DeviceOptimizer opt, Path file, SinkFactory sinks) throws IOException {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        // Checked first, so that a missing folder is a CheckpointException naming it (not a raw
        // NoSuchFileException from listing it), and nothing is written.
        if (dir == null || !Files.isDirectory(dir)) {
            throw new CheckpointException(target + ": cannot save: the folder " + dir + " does not exist or is not a"
                    + " folder; create it first (save creates no folders)");
        }
        try {
            deleteStaleTemporaries(dir, target.getFileName().toString());
        } catch (IOException e) {
            throw new CheckpointException(target + ": save failed while removing stale temporary files (" + e
                    + "); the previous checkpoint, if any, is unchanged", e);
        }
        List<Item> items = items(opt);
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("format", FORMAT);
        metadata.put("format_version", Integer.toString(VERSION));
        metadata.put("algorithm", opt.defaults().algorithm());
        StepReport counters = opt.lastStep();
        metadata.put("step", Long.toString(counters.step()));
        metadata.put("skipped_steps", Long.toString(counters.skippedSteps()));
        metadata.put("grad_scale", Double.toString(opt.gradScale()));
        metadata.put("state_precision", opt.statePrecision().name());
        metadata.put("master_weights", Boolean.toString(opt.usesMasterWeights()));
        metadata.put("saved_by_backend", opt.backend().name());
        List<ParamGroup> groups = opt.groups();
        metadata.put("groups", Integer.toString(groups.size()));
        for (ParamGroup g : groups) {
            ConfigCodec.encode(g.currentConfig()).forEach((k, v) -> metadata.put("group." + g.index() + "." + k, v));
        }
        putSchedulesAndScaler(opt, metadata);
        List<Safetensors.Entry> entries = new ArrayList<>();
        long offset = 0;
        for (Item item : items) {
            AbstractTensorBuffer b = item.buffer();
            long bytes = b.byteSize();
            entries.add(new Safetensors.Entry(item.key(), b.precision(), b.length(), offset, offset + bytes));
            offset += bytes;
            metadata.put("group_of." + item.key(), Integer.toString(item.group()));
            metadata.put("crc32c." + item.key(), String.format("%08x", crcOf(b)));
        }
        byte[] header = Safetensors.encodeHeader(metadata, entries);

        Path tmp = dir.resolve("." + target.getFileName() + ".tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        boolean moved = false;
        try {
            try (Sink sink = sinks.open(tmp)) {
                sink.write(ByteBuffer.wrap(header));
                for (Item item : items) forEachBlock(item.buffer(), sink::write);
                sink.sync();
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new CheckpointException(target + ": the file system cannot rename atomically, so a save could leave a"
                        + " partial checkpoint; choose a folder on a local file system", e);
            }
            moved = true;
            syncDirectory(dir);
        } catch (CheckpointException e) {
            throw e;
        } catch (IOException e) {
            throw new CheckpointException(target + ": save failed (" + e + "); the previous checkpoint, if any, is unchanged", e);
        } finally {
            if (!moved) Files.deleteIfExists(tmp);
        }
    }

    /** Temporary files of earlier saves of the same file that a crash left behind. */
    private static void deleteStaleTemporaries(Path dir, String name) throws IOException {
        try (DirectoryStream<Path> stale = Files.newDirectoryStream(dir, "." + name + ".tmp-*")) {
            for (Path p : stale) {
                String pid = p.getFileName().toString().substring(("." + name + ".tmp-").length()).split("-")[0];
                boolean alive = pid.matches("\\d+") && ProcessHandle.of(Long.parseLong(pid)).map(ProcessHandle::isAlive).orElse(false);
                if (!alive) Files.deleteIfExists(p);
            }
        }
    }

    private static void syncDirectory(Path dir) throws IOException {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        }
    }

    private static long crcOf(AbstractTensorBuffer b) throws IOException {
        CRC32C crc = new CRC32C();
        forEachBlock(b, crc::update);
        return crc.getValue();
    }

    private interface BlockConsumer {
        void accept(ByteBuffer bytes) throws IOException;
    }

    /** The buffer's elements as little-endian bytes of its precision, a block at a time. */
    private static void forEachBlock(AbstractTensorBuffer b, BlockConsumer consumer) throws IOException {
        int size = b.precision().bytes();
        float[] values = new float[(int) Math.min(BLOCK, b.length())];
        ByteBuffer bytes = ByteBuffer.allocate(values.length * size).order(ByteOrder.LITTLE_ENDIAN);
        for (long from = 0; from < b.length(); from += values.length) {
            int n = (int) Math.min(values.length, b.length() - from);
            b.copyTo(from, values, 0, n);
            bytes.clear();
            for (int i = 0; i < n; i++) {
                if (size == Float.BYTES) bytes.putFloat(values[i]);
                else bytes.putShort(Conversions.narrow(b.precision(), values[i]));
            }
            bytes.flip();
            consumer.accept(bytes);
        }
    }

    /** Validates the whole file against the optimizer, then applies it; nothing changes on any failure. */
    static void load(DeviceOptimizer opt, Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            load(opt, file.toString(), channel);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new CheckpointException(file + ": no such file", e);
        }
    }

    /** Loads from any channel (the fuzz test reads from memory); {@code name} names it in messages. */
    static void load(DeviceOptimizer opt, String name, SeekableByteChannel channel) throws IOException {
        {
            long size = channel.size();
            byte[] prefix = new byte[8];
            readFully(channel, ByteBuffer.wrap(prefix, 0, (int) Math.min(8, size)), 0);
            Safetensors.Header header = Safetensors.parse(name, size, prefix, n -> {
                byte[] h = new byte[n];
                readFully(channel, ByteBuffer.wrap(h), 8);
                return h;
            });
            Plan plan = validate(opt, name, header);
            SchedulesAndScaler extras = schedulesAndScaler(opt, name, header.metadata(), plan.configs());
            // Read and check every tensor before touching anything.
            Map<String, float[]> data = new LinkedHashMap<>();
            for (Safetensors.Entry e : header.entries()) {
                if (e.length() > Integer.MAX_VALUE - 8) {
                    throw new CheckpointException(name + ": tensor '" + e.name() + "' has " + e.length()
                            + " elements; loading holds each tensor in one Java array (at most 2^31 - 9 elements)");
                }
                ByteBuffer bytes = ByteBuffer.allocate((int) (e.end() - e.begin())).order(ByteOrder.LITTLE_ENDIAN);
                readFully(channel, bytes, header.dataStart() + e.begin());
                CRC32C crc = new CRC32C();
                crc.update(bytes.array());
                String stored = header.metadata().get("crc32c." + e.name());
                String actual = String.format("%08x", crc.getValue());
                if (!actual.equals(stored)) {
                    throw new CheckpointException(name + ": tensor '" + e.name() + "' fails its CRC32C (stored " + stored
                            + ", computed " + actual + "): the data are damaged");
                }
                float[] values = new float[(int) e.length()];
                bytes.rewind();
                for (int i = 0; i < values.length; i++) {
                    values[i] = e.dtype() == Precision.FP32 ? bytes.getFloat() : Conversions.widen(e.dtype(), bytes.getShort());
                }
                data.put(e.name(), values);
            }
            opt.applyCheckpoint(plan.configs(), plan.step(), plan.skippedSteps(), plan.gradScale(), extras.schedules(),
                    extras.scaler(), () -> {
                for (Item item : plan.items()) {
                    float[] values = data.get(item.key());
                    for (int from = 0; from < values.length; from += BLOCK) {
                        item.buffer().copyFrom(values, from, from, Math.min(BLOCK, values.length - from));
                    }
                }
            });
        }
    }

    // ---- Learning-rate schedules and the dynamic loss scaler: metadata entries only, written only when
    // used, so that a checkpoint without them is byte for byte what earlier versions wrote ----

    private static final String SCHEDULE = "schedule.";
    private static final String SCALER = "loss_scaler.";

    /** {@code schedule.N} for each group N with a schedule; {@code loss_scaler.*} with dynamic loss scaling. */
    private static void putSchedulesAndScaler(DeviceOptimizer opt, Map<String, String> metadata) {
        for (ParamGroup g : opt.groups()) {
            LrSchedule schedule = g.currentSchedule();
            if (schedule != null) metadata.put(SCHEDULE + g.index(), schedule.toText());
        }
        DynamicLossScaling config = opt.dynamicLossScaling().orElse(null);
        if (config == null) return;
        LossScaleState state = opt.lossScaleState();
        metadata.put(SCALER + "scale", Float.toString(state.scale()));
        metadata.put(SCALER + "growth_tracker", Integer.toString(state.growthTracker()));
        metadata.put(SCALER + "growths", Long.toString(state.growths()));
        metadata.put(SCALER + "backoffs", Long.toString(state.backoffs()));
        metadata.put(SCALER + "growth_factor", Float.toString((float) config.growthFactor()));
        metadata.put(SCALER + "backoff_factor", Float.toString((float) config.backoffFactor()));
        metadata.put(SCALER + "growth_interval", Integer.toString(config.growthInterval()));
    }

    /** Each group's schedule (null: none) and the scaler's state (null without dynamic scaling). */
    private record SchedulesAndScaler(List<LrSchedule> schedules, LossScaleState scaler) {}

    /** Reads and checks the schedules and the scaler's state; changes nothing. */
    private static SchedulesAndScaler schedulesAndScaler(DeviceOptimizer opt, String name, Map<String, String> m,
                                                         List<OptimizerConfig> configs) throws CheckpointException {
        List<LrSchedule> schedules = new ArrayList<>();
        for (int g = 0; g < configs.size(); g++) schedules.add(null);
        for (Map.Entry<String, String> e : m.entrySet()) {
            if (!e.getKey().startsWith(SCHEDULE)) continue;
            String index = e.getKey().substring(SCHEDULE.length());
            int g = index.matches("0|[1-9][0-9]{0,8}") ? Integer.parseInt(index) : -1;
            if (g < 0 || g >= configs.size()) {
                throw new CheckpointException(name + ": " + e.getKey() + " names no group of this optimizer (" + configs.size() + " groups)");
            }
            try {
                LrSchedule schedule = LrSchedule.fromText(e.getValue());
                schedule.segments().requireFiniteWith(configs.get(g).learningRate(), "group " + g);
                schedules.set(g, schedule);
            } catch (IllegalArgumentException ex) {
                throw new CheckpointException(name + ": " + e.getKey() + ": " + ex.getMessage(), ex);
            }
        }
        DynamicLossScaling config = opt.dynamicLossScaling().orElse(null);
        boolean saved = m.containsKey(SCALER + "scale");
        if (config == null && !saved) return new SchedulesAndScaler(schedules, null);
        if (config == null || !saved) {
            throw new CheckpointException(name + ": the checkpoint was saved " + (saved ? "with" : "without") + " dynamic loss scaling,"
                    + " this optimizer runs " + (config != null ? "with" : "without") + " it");
        }
        require(m, name, SCALER + "growth_factor", Float.toString((float) config.growthFactor()));
        require(m, name, SCALER + "backoff_factor", Float.toString((float) config.backoffFactor()));
        require(m, name, SCALER + "growth_interval", Integer.toString(config.growthInterval()));
        float scale;
        try {
            scale = Float.parseFloat(m.get(SCALER + "scale"));
        } catch (NumberFormatException e) {
            throw new CheckpointException(name + ": " + SCALER + "scale '" + m.get(SCALER + "scale") + "' is not a number");
        }
        if (!(scale > 0f) || Float.isInfinite(scale)) {
            throw new CheckpointException(name + ": " + SCALER + "scale " + scale + " is not finite and > 0");
        }
        long tracker = number(m, name, SCALER + "growth_tracker");
        if (tracker >= config.growthInterval()) {
            throw new CheckpointException(name + ": " + SCALER + "growth_tracker " + tracker + " is not below the growth interval "
                    + config.growthInterval());
        }
        LossScaleState state = new LossScaleState(scale, (int) tracker, number(m, name, SCALER + "growths"),
                number(m, name, SCALER + "backoffs"));
        return new SchedulesAndScaler(schedules, state);
    }

    private record Plan(List<OptimizerConfig> configs, long step, long skippedSteps, double gradScale, List<Item> items) {}

    private static Plan validate(DeviceOptimizer opt, String name, Safetensors.Header header) throws CheckpointException {
        Map<String, String> m = header.metadata();
        if (!FORMAT.equals(m.get("format"))) {
            throw new CheckpointException(name + ": not a fusedopt optimizer checkpoint (format '" + m.get("format") + "')");
        }
        if (!Integer.toString(VERSION).equals(m.get("format_version"))) {
            throw new CheckpointException(name + ": format version " + m.get("format_version") + "; this library reads version " + VERSION);
        }
        String algorithm = opt.defaults().algorithm();
        if (!algorithm.equals(m.get("algorithm"))) {
            throw new CheckpointException(name + ": the checkpoint is for " + m.get("algorithm") + ", this optimizer runs " + algorithm);
        }
        require(m, name, "state_precision", opt.statePrecision().name());
        require(m, name, "master_weights", Boolean.toString(opt.usesMasterWeights()));
        List<ParamGroup> groups = opt.groups();
        require(m, name, "groups", Integer.toString(groups.size()));
        List<OptimizerConfig> configs = new ArrayList<>();
        for (ParamGroup g : groups) {
            Map<String, String> fields = new LinkedHashMap<>();
            String prefix = "group." + g.index() + ".";
            m.forEach((k, v) -> { if (k.startsWith(prefix)) fields.put(k.substring(prefix.length()), v); });
            OptimizerConfig config;
            try {
                config = ConfigCodec.decode(fields);
            } catch (IllegalArgumentException e) {
                throw new CheckpointException(name + ": group " + g.index() + ": " + e.getMessage(), e);
            }
            if (!UpdatePlan.of(config).sameLayout(g.plan())) {
                throw new CheckpointException(name + ": group " + g.index() + " was saved as " + config + ", whose state tensors"
                        + " differ from this optimizer's " + g.currentConfig());
            }
            configs.add(config);
        }
        long step = number(m, name, "step");
        long skipped = number(m, name, "skipped_steps");
        double gradScale;
        try {
            gradScale = Double.parseDouble(String.valueOf(m.get("grad_scale")));
        } catch (NumberFormatException e) {
            throw new CheckpointException(name + ": grad_scale '" + m.get("grad_scale") + "' is not a number");
        }
        if (!(gradScale > 0) || Double.isInfinite(gradScale)) throw new CheckpointException(name + ": grad_scale " + gradScale + " is not finite and > 0");

        List<Item> items = items(opt);
        Map<String, Safetensors.Entry> entries = new LinkedHashMap<>();
        for (Safetensors.Entry e : header.entries()) entries.put(e.name(), e);
        for (Item item : items) {
            Safetensors.Entry e = entries.remove(item.key());
            if (e == null) throw new CheckpointException(name + ": the checkpoint lacks tensor '" + item.key() + "'");
            if (e.length() != item.buffer().length()) {
                throw new CheckpointException(name + ": tensor '" + item.key() + "' has " + e.length() + " elements, this optimizer's has "
                        + item.buffer().length() + " (wrong shape)");
            }
            if (e.dtype() != item.buffer().precision()) {
                throw new CheckpointException(name + ": tensor '" + item.key() + "' is " + e.dtype() + ", this optimizer's is "
                        + item.buffer().precision());
            }
            require(m, name, "group_of." + item.key(), Integer.toString(item.group()));
            if (m.get("crc32c." + item.key()) == null) throw new CheckpointException(name + ": tensor '" + item.key() + "' has no CRC32C");
        }
        if (!entries.isEmpty()) {
            throw new CheckpointException(name + ": the checkpoint has tensor '" + entries.keySet().iterator().next()
                    + "', which this optimizer does not have (" + entries.size() + " extra)");
        }
        return new Plan(configs, step, skipped, gradScale, items);
    }

    private static void require(Map<String, String> m, String name, String key, String expected) throws CheckpointException {
        if (!expected.equals(m.get(key))) {
            throw new CheckpointException(name + ": " + key + " is " + m.get(key) + " in the checkpoint, " + expected + " in this optimizer");
        }
    }

    private static long number(Map<String, String> m, String name, String key) throws CheckpointException {
        try {
            long v = Long.parseLong(String.valueOf(m.get(key)));
            if (v < 0) throw new NumberFormatException("negative");
            return v;
        } catch (NumberFormatException e) {
            throw new CheckpointException(name + ": " + key + " '" + m.get(key) + "' is not a count");
        }
    }

    private static void readFully(SeekableByteChannel channel, ByteBuffer into, long position) throws IOException {
        channel.position(position);
        while (into.hasRemaining()) {
            if (channel.read(into) < 0) {
                throw new CheckpointException("unexpected end of file at byte " + channel.position() + " (truncated)");
            }
        }
    }
}
