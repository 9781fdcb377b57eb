package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.QuantizedBuffer;
import io.fusedopt.internal.Safetensors;
import io.fusedopt.internal.Safetensors.Dtype;
import io.fusedopt.internal.UpdatePlan;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Saving and loading an optimizer's state as safetensors ({@link DeviceOptimizer#save},
 * {@link DeviceOptimizer#load}), to and from a file, a stream or a byte array (the same bytes).
 * One tensor per param ({@code name/param}, unless saved without params), master weights
 * ({@code name/master}) and state ({@code name/exp_avg}, ...), each with a CRC32C in the metadata,
 * which also holds the format version, the algorithm, every group's hyper-parameters, the step
 * counters, the loss scale and the storage formats. An 8-bit state is its codes, its absmax and a
 * code map ({@link CheckpointQuantization}).
 */
final class Checkpoint {
    private Checkpoint() {}

    static final String FORMAT = "fusedopt-optimizer-state";
    static final int VERSION = 1;
    /** Metadata key, present ("false") only in a checkpoint saved without the params. */
    static final String PARAMS_SAVED = "params_saved";
    /** The largest byte array a save into memory makes. */
    static final long MAX_ARRAY_BYTES = Integer.MAX_VALUE - 8;
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
                int limit = bytes.limit();
                while (bytes.hasRemaining()) {
                    // A block per write: the JDK writes a heap buffer through a temporary direct buffer as large as the write.
                    bytes.limit((int) Math.min(limit, (long) bytes.position() + BLOCK));
                    channel.write(bytes);
                    bytes.limit(limit);
                }
            }
            @Override public void sync() throws IOException { channel.force(true); }
            @Override public void close() throws IOException { channel.close(); }
        };
    };

    /**
     * One tensor of the checkpoint and the buffer behind it: {@code parameter/tensor}, where tensor
     * is "param", "master" or a state's name. The key is made only where it is needed (a message,
     * a lookup out of order): a save or load of 10^5 tensors compares names in place instead of
     * making 3 * 10^5 strings that live as long as it does.
     */
    private record Item(String parameter, String tensor, int group, AbstractTensorBuffer buffer, long[] dims) {
        String key() {
            return parameter + "/" + tensor;
        }

        /** Whether this is an optimizer state (not the param or its master weights). */
        boolean isState() {
            return !tensor.equals(PARAM) && !tensor.equals(MASTER);
        }

        /** Whether {@code name} is {@link #key()}. */
        boolean isNamed(String name) {
            int p = parameter.length();
            return name.length() == p + 1 + tensor.length() && name.startsWith(parameter) && name.charAt(p) == '/'
                    && name.endsWith(tensor);
        }
    }

    private static final String PARAM = "param", MASTER = "master";

    /** The checkpoint's tensors in this optimizer's order; without {@code name/param} when {@code withParams} is false. */
    private static List<Item> items(DeviceOptimizer opt, boolean withParams) {
        List<Item> items = new ArrayList<>();
        for (ParamGroup group : opt.groups()) {
            for (Parameter p : group.parameterList()) {
                // Each tensor of a parameter has its shape (null: one-dimensional), a state its own; an 8-bit state's codes too.
                long[] dims = p.dimsOrNull();
                if (withParams) items.add(new Item(p.name(), PARAM, group.index(), p.paramBuffer(), dims));
                if (p.masterBuffer() != null) items.add(new Item(p.name(), MASTER, group.index(), p.masterBuffer(), dims));
                for (Map.Entry<StateKind, AbstractTensorBuffer> s : p.stateBuffers().entrySet()) {
                    items.add(new Item(p.name(), s.getKey().stateName(), group.index(), s.getValue(), p.stateDimsOrNull(s.getKey())));
                }
            }
        }
        return items;
    }

    /**
     * A checkpoint ready to write: the header (checksums included; its bytes from position to
     * limit), the tensors, the code maps of the 8-bit states, the total size.
     */
    private record Prepared(ByteBuffer header, List<Item> items, List<CodeMap> maps, long bytes) {}

    /** Reads every tensor once for its CRC32C and encodes the header (a second pass writes the data). */
    private static Prepared prepare(DeviceOptimizer opt, SaveOptions options) throws IOException {
        List<Item> items = items(opt, options.includesParams());
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("format", FORMAT);
        metadata.put("format_version", Integer.toString(VERSION));
        metadata.put("algorithm", opt.defaults().algorithm());
        StepReport counters = opt.lastStep();
        metadata.put("step", Long.toString(counters.step()));
        metadata.put("skipped_steps", Long.toString(counters.skippedSteps()));
        metadata.put("grad_scale", Double.toString(opt.gradScale()));
        metadata.put("state_precision", opt.statePrecision().name());
        CheckpointQuantization.putMetadata(opt, metadata);
        metadata.put("master_weights", Boolean.toString(opt.usesMasterWeights()));
        // Written only with stochastic rounding, so that other checkpoints keep their bytes.
        opt.stochasticRoundingSeed().ifPresent(seed -> metadata.put(ROUNDING_SEED, Long.toString(seed)));
        // Written only when the params are left out, so that a full save keeps the bytes of every
        // earlier version-1 file (CheckpointFormatTest) and a reader that predates the key refuses a
        // params-less file as lacking 'name/param' rather than loading it as complete.
        if (!options.includesParams()) metadata.put(PARAMS_SAVED, "false");
        metadata.put("saved_by_backend", opt.backend().name());
        List<ParamGroup> groups = opt.groups();
        metadata.put("groups", Integer.toString(groups.size()));
        for (ParamGroup g : groups) {
            ConfigCodec.encode(g.currentConfig()).forEach((k, v) -> metadata.put("group." + g.index() + "." + k, v));
        }
        putSchedulesAndScaler(opt, metadata);
        putTensorSteps(opt, metadata, counters.step());
        TensorEncoder encoder = new TensorEncoder();
        Entries entries = new Entries(items.size());
        java.util.EnumSet<CodeMap> maps = java.util.EnumSet.noneOf(CodeMap.class);
        for (Item item : items) {
            AbstractTensorBuffer b = item.buffer();
            if (b instanceof QuantizedBuffer q) {
                // Codes, then absmax: the raw 8-bit state, read without dequantizing it.
                entries.add(item.key(), Dtype.U8, q.length(), encoder.crc32c(c -> encoder.forEachCodeBlock(q, c)), item.dims());
                entries.add(item.key() + CheckpointQuantization.ABSMAX, Dtype.F32, q.blocks(),
                        encoder.crc32c(c -> encoder.forEachAbsmaxBlock(q, c)), null);
                maps.add(q.codeMap());
            } else {
                entries.add(item.key(), Dtype.of(b.precision()), b.length(), encoder.crc32c(b), item.dims());
            }
        }
        for (CodeMap map : maps) {
            entries.add(CheckpointQuantization.mapTensor(map), Dtype.F32, BlockwiseQuantization.CODES,
                    encoder.crc32c(c -> encoder.forEachBlock(map.table(), c)), null);
        }
        // group_of.NAME and crc32c.NAME of each tensor, after the others: two entries per tensor
        // written straight into the header (a map of them cost most of a save of 10^5 small tensors);
        // an 8-bit state's code_map.NAME and its absmax's crc32c follow them. Their prefixes keep
        // them apart from every other key and from each other's.
        String[] groupText = new String[groups.size()];
        for (int g = 0; g < groupText.length; g++) groupText[g] = Integer.toString(g);
        List<Safetensors.Entry> list = entries.list;
        ByteBuffer header = Safetensors.encodeHeader(metadata, writer -> {
            int e = 0;
            for (Item item : items) {
                String key = list.get(e).name(); // the item's key, made once
                writer.name("group_of.", key).value(groupText[item.group()]);
                writer.name("crc32c.", key).value(Safetensors.crcHex(entries.checksums[e++]));
                if (item.buffer() instanceof QuantizedBuffer q) {
                    writer.name(CheckpointQuantization.CODE_MAP, key).value(CheckpointQuantization.mapTensor(q.codeMap()));
                    writer.name("crc32c.", list.get(e).name()).value(Safetensors.crcHex(entries.checksums[e++]));
                }
            }
            for (; e < list.size(); e++) writer.name("crc32c.", list.get(e).name()).value(Safetensors.crcHex(entries.checksums[e]));
        }, list);
        return new Prepared(header, items, List.copyOf(maps), header.remaining() + entries.bytes);
    }

    /** The header's tensors in data order, with their CRC32Cs. */
    private static final class Entries {
        final List<Safetensors.Entry> list;
        long[] checksums;
        /** Data bytes so far. */
        long bytes;

        Entries(int expected) {
            list = new ArrayList<>(expected);
            checksums = new long[expected];
        }

        /** A tensor of shape {@code dims} (null: one-dimensional). */
        void add(String name, Dtype dtype, long length, long crc32c, long[] dims) {
            long end = bytes + length * dtype.bytes();
            list.add(new Safetensors.Entry(name, dtype, length, bytes, end, dims));
            bytes = end;
            if (list.size() > checksums.length) checksums = java.util.Arrays.copyOf(checksums, 2 * list.size());
            checksums[list.size() - 1] = crc32c;
        }
    }

    private static void write(Prepared prepared, Sink sink) throws IOException {
        sink.write(prepared.header().duplicate()); // the sink consumes its buffer
        TensorEncoder encoder = new TensorEncoder();
        CoalescedWrites writes = new CoalescedWrites(sink);
        for (Item item : prepared.items()) {
            if (item.buffer() instanceof QuantizedBuffer q) {
                encoder.forEachCodeBlock(q, writes);
                encoder.forEachAbsmaxBlock(q, writes);
            } else {
                encoder.forEachBlock(item.buffer(), writes);
            }
        }
        for (CodeMap map : prepared.maps()) encoder.forEachBlock(map.table(), writes);
        writes.flush();
    }

    /**
     * Gathers the sink's small writes into blocks of {@link #BLOCK} bytes (one system call per tensor
     * of a few bytes made a save of 10^5 tiny tensors take seconds); a block that size or larger
     * goes through as it is.
     */
    private static final class CoalescedWrites implements BlockConsumer {
        private final Sink sink;
        private final byte[] pending = new byte[BLOCK];
        private int used;

        CoalescedWrites(Sink sink) {
            this.sink = sink;
        }

        @Override
        public void accept(byte[] bytes, int length) throws IOException {
            if (length > pending.length - used) flush();
            if (length >= pending.length) {
                sink.write(ByteBuffer.wrap(bytes, 0, length));
            } else {
                System.arraycopy(bytes, 0, pending, used, length);
                used += length;
            }
        }

        void flush() throws IOException {
            if (used > 0) sink.write(ByteBuffer.wrap(pending, 0, used));
            used = 0;
        }
    }

    /** Writes the checkpoint to a temporary file beside {@code file}, syncs it, renames it over {@code file}, syncs the folder. */
    static void save(DeviceOptimizer opt, Path file, SaveOptions options, SinkFactory sinks) throws IOException {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        // Checked first, so that a missing folder is a CheckpointException naming it (not a raw
        // NoSuchFileException from listing it), and nothing is written.
        if (dir == null || !Files.isDirectory(dir)) {
            throw new CheckpointException(target + ": cannot save: the folder " + dir + " does not exist or is not a"
                    + " folder; create it first (save creates no folders)");
        }
        // Checked before the checkpoint is prepared and written, which the final rename would only then refuse.
        if (Files.isDirectory(target)) {
            throw new CheckpointException(target + ": cannot save: it is a folder; name a file (in it, for example)");
        }
        try {
            deleteStaleTemporaries(dir, target.getFileName().toString());
        } catch (IOException e) {
            throw new CheckpointException(target + ": save failed while removing stale temporary files (" + e
                    + "); the previous checkpoint, if any, is unchanged", e);
        }
        Prepared prepared = prepare(opt, options);

        Path tmp = dir.resolve("." + target.getFileName() + ".tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        boolean moved = false;
        try {
            try (Sink sink = sinks.open(tmp)) {
                write(prepared, sink);
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

    /** Writes the checkpoint to {@code out}, which it flushes and leaves open. */
    static void save(DeviceOptimizer opt, OutputStream out, SaveOptions options) throws IOException {
        Prepared prepared = prepare(opt, options);
        try {
            write(prepared, new Sink() {
                @Override public void write(ByteBuffer bytes) throws IOException {
                    out.write(bytes.array(), bytes.arrayOffset() + bytes.position(), bytes.remaining());
                    bytes.position(bytes.limit());
                }
                @Override public void sync() {}
                @Override public void close() {}
            });
            out.flush();
        } catch (IOException e) {
            throw new CheckpointException("stream: save failed (" + e + ") after some of the checkpoint's " + prepared.bytes()
                    + " bytes were written; the stream holds a partial checkpoint", e);
        }
    }

    /** The checkpoint's bytes: those a file save writes. */
    static byte[] saveToBytes(DeviceOptimizer opt, SaveOptions options) throws IOException {
        return saveToBytes(opt, options, MAX_ARRAY_BYTES);
    }

    /** {@link #saveToBytes} with the largest array as a parameter (a test needs no 2 GiB optimizer). */
    static byte[] saveToBytes(DeviceOptimizer opt, SaveOptions options, long maxBytes) throws IOException {
        Prepared prepared = prepare(opt, options);
        if (prepared.bytes() > maxBytes) {
            throw new CheckpointException("byte array: the checkpoint takes " + prepared.bytes() + " bytes, more than one Java"
                    + " array holds (" + maxBytes + "); save to a file or an OutputStream");
        }
        ByteBuffer out = ByteBuffer.allocate((int) prepared.bytes());
        write(prepared, new Sink() {
            @Override public void write(ByteBuffer bytes) { out.put(bytes); }
            @Override public void sync() {}
            @Override public void close() {}
        });
        return out.array();
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

    private interface BlockConsumer {
        /** Takes {@code bytes[0, length)}, which the caller reuses afterwards. */
        void accept(byte[] bytes, int length) throws IOException;
    }

    /**
     * A buffer's elements as little-endian bytes of its precision, a block of at most {@link #BLOCK}
     * elements at a time, through scratch arrays reused from tensor to tensor (a save reads every
     * tensor twice: for its checksum, then for the data). Plain loops over arrays: they are compiled
     * at once, where byte-buffer views cost a save's first call hundreds of milliseconds.
     */
    private static final class TensorEncoder {
        private float[] values = new float[0];
        private byte[] bytes = new byte[0];
        /** Reset for each tensor: one checksum and one consumer for all, not a pair per tensor. */
        private final CRC32C crc = new CRC32C();
        private final BlockConsumer crcUpdate = (block, length) -> crc.update(block, 0, length);

        long crc32c(AbstractTensorBuffer b) throws IOException {
            crc.reset();
            forEachBlock(b, crcUpdate);
            return crc.getValue();
        }

        /** The CRC32C of the bytes {@code blocks} gives its consumer. */
        long crc32c(Blocks blocks) throws IOException {
            crc.reset();
            blocks.writeTo(crcUpdate);
            return crc.getValue();
        }

        /** Scratch arrays for blocks of {@code elements} values. */
        private void reserve(int elements) {
            if (values.length < elements) {
                values = new float[elements];
                bytes = new byte[elements * Float.BYTES];
            }
        }

        void forEachBlock(AbstractTensorBuffer b, BlockConsumer consumer) throws IOException {
            Precision precision = b.precision();
            int block = (int) Math.min(BLOCK, b.length());
            reserve(block);
            for (long from = 0; from < b.length(); from += block) {
                int n = (int) Math.min(block, b.length() - from);
                b.copyTo(from, values, 0, n);
                if (precision == Precision.FP32) {
                    encodeFloats(n);
                } else {
                    for (int i = 0, at = 0; i < n; i++, at += Short.BYTES) putLittleEndian(bytes, at, Conversions.narrow(precision, values[i]), Short.BYTES);
                }
                consumer.accept(bytes, n * precision.bytes());
            }
        }

        /** An 8-bit state's codes, a byte per element. */
        void forEachCodeBlock(QuantizedBuffer q, BlockConsumer consumer) throws IOException {
            reserve((int) Math.min(BLOCK, q.length()));
            for (long from = 0; from < q.length(); from += BLOCK) {
                int n = (int) Math.min(BLOCK, q.length() - from);
                q.readCodes(from, bytes, 0, n);
                consumer.accept(bytes, n);
            }
        }

        /** An 8-bit state's absmax, a float32 per block. */
        void forEachAbsmaxBlock(QuantizedBuffer q, BlockConsumer consumer) throws IOException {
            reserve(Math.min(BLOCK, q.blocks()));
            for (int from = 0; from < q.blocks(); from += BLOCK) {
                int n = Math.min(BLOCK, q.blocks() - from);
                q.readAbsmax(from, values, 0, n);
                encodeFloats(n);
                consumer.accept(bytes, n * Float.BYTES);
            }
        }

        /** Float32 values (a code map's). */
        void forEachBlock(float[] v, BlockConsumer consumer) throws IOException {
            for (int from = 0; from < v.length; from += BLOCK) {
                int n = Math.min(BLOCK, v.length - from);
                reserve(n);
                System.arraycopy(v, from, values, 0, n);
                encodeFloats(n);
                consumer.accept(bytes, n * Float.BYTES);
            }
        }

        /** {@code values[0, n)} as little-endian float32 into {@code bytes}. */
        private void encodeFloats(int n) {
            for (int i = 0, at = 0; i < n; i++, at += Float.BYTES) putLittleEndian(bytes, at, Float.floatToRawIntBits(values[i]), Float.BYTES);
        }
    }

    /** Bytes written block by block to a consumer (a quantized state's codes or absmax, a code map). */
    @FunctionalInterface
    private interface Blocks {
        void writeTo(BlockConsumer consumer) throws IOException;
    }

    /** The low {@code size} bytes of {@code value}, least significant first, at {@code bytes[at]}. */
    private static void putLittleEndian(byte[] bytes, int at, int value, int size) {
        for (int k = 0; k < size; k++) bytes[at + k] = (byte) (value >>> (8 * k));
    }

    /** {@code size} bytes at {@code bytes[at]}, least significant first, as an int (sign-extended from 16 bits when 2). */
    private static int getLittleEndian(byte[] bytes, int at, int size) {
        int value = 0;
        for (int k = 0; k < size; k++) value |= (bytes[at + k] & 0xFF) << (8 * k);
        return size == Short.BYTES ? (short) value : value;
    }

    /** Validates the whole file against the optimizer, then applies it; nothing changes on any failure. */
    static LoadReport load(DeviceOptimizer opt, Path file, LoadOptions options) throws IOException {
        return read(file, channel -> load(opt, file.toString(), channel, options));
    }

    /** What {@code reader} reads from {@code file}; a missing file is a {@link CheckpointException} naming it. */
    private static <T> T read(Path file, ChannelReader<T> reader) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            return reader.read(channel);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new CheckpointException(file + ": no such file", e);
        }
    }

    private interface ChannelReader<T> {
        T read(SeekableByteChannel channel) throws IOException;
    }

    /** A strict load from any channel (the fuzz test reads from memory); {@code name} names it in messages. */
    static void load(DeviceOptimizer opt, String name, SeekableByteChannel channel) throws IOException {
        load(opt, name, channel, LoadOptions.defaults());
    }

    /** Loads from the bytes of a checkpoint (named "byte array" in messages). */
    static LoadReport load(DeviceOptimizer opt, byte[] bytes, LoadOptions options) throws IOException {
        return load(opt, "byte array", new ByteArrayChannel(bytes), options);
    }

    /**
     * A checkpoint file's header: the tensors it holds ({@code name/param}, {@code name/exp_avg},
     * ...) and its metadata, checked as a load checks them; the data are not read.
     */
    static Safetensors.Header header(Path file) throws IOException {
        return read(file, channel -> header(file.toString(), channel));
    }

    /** The header of the checkpoint in {@code channel}, named {@code name} in messages. */
    private static Safetensors.Header header(String name, SeekableByteChannel channel) throws IOException {
        long size = channel.size();
        byte[] prefix = new byte[8];
        readFully(name, channel, ByteBuffer.wrap(prefix, 0, (int) Math.min(8, size)), 0);
        return Safetensors.parse(name, size, prefix, n -> {
            byte[] h = new byte[n];
            readFully(name, channel, ByteBuffer.wrap(h), 8);
            return h;
        });
    }

    static LoadReport load(DeviceOptimizer opt, String name, SeekableByteChannel channel, LoadOptions options) throws IOException {
        Safetensors.Header header = header(name, channel);
        return load(opt, name, header, options, new DataSource() {
            /**
             * The data from {@code windowStart} on, read ahead in blocks: tensors are read in data
             * order, and one read per tensor of a few bytes made a load of 10^5 tiny tensors take
             * seconds. A read of a block or more goes to the channel directly.
             */
            private final ByteBuffer window = ByteBuffer.allocate((int) Math.min(BLOCK, header.dataLength())).limit(0); // empty
            private long windowStart;

            @Override public void read(ByteBuffer into, long dataOffset) throws IOException {
                int n = into.remaining();
                if (n >= window.capacity()) {
                    readFully(name, channel, into, header.dataStart() + dataOffset);
                    return;
                }
                if (dataOffset < windowStart || dataOffset + n > windowStart + window.limit()) {
                    window.clear().limit((int) Math.min(window.capacity(), header.dataLength() - dataOffset));
                    readFully(name, channel, window, header.dataStart() + dataOffset);
                    window.flip();
                    windowStart = dataOffset;
                }
                into.put(window.array(), (int) (dataOffset - windowStart), n);
            }
            @Override public void finish() {} // the header was checked against the file's size
        });
    }

    /**
     * Loads from a stream read to its end (named "stream" in messages). Nothing is allocated from a
     * size the stream declares before the stream has proved it: the header arrives in pieces, and
     * tensor data are held whole only for tensors that matched one of this optimizer's (of the same
     * length and format); the others are read through in blocks for their checksums. A stream that
     * stops delivering (reads of 0 bytes) is refused ({@link StalledStreamGuard}).
     */
    static LoadReport load(DeviceOptimizer opt, InputStream source, LoadOptions options) throws IOException {
        String name = "stream";
        InputStream in = new StalledStreamGuard(source, name);
        byte[] prefix = in.readNBytes(8);
        if (prefix.length < 8) {
            throw new CheckpointException(name + ": truncated: " + prefix.length + " bytes, not even the 8-byte header length");
        }
        long[] consumed = {8};
        Safetensors.Header header = Safetensors.parseStreamed(name, prefix, n -> {
            byte[] h = in.readNBytes(n); // in pieces: a lying length costs what the stream holds, not n
            consumed[0] += h.length;
            if (h.length < n) {
                throw new CheckpointException(name + ": truncated: the header claims " + n + " bytes but the stream ended after "
                        + h.length);
            }
            return h;
        });
        return load(opt, name, header, options, new DataSource() {
            @Override public void read(ByteBuffer into, long dataOffset) throws IOException {
                if (header.dataStart() + dataOffset != consumed[0]) {
                    throw new IllegalStateException("tensors must be read in data order"); // Safetensors.parse sorts them
                }
                while (into.hasRemaining()) {
                    int n = in.read(into.array(), into.arrayOffset() + into.position(), into.remaining());
                    if (n < 0) {
                        throw new CheckpointException(name + ": truncated: the stream ended at byte " + consumed[0] + ", the header"
                                + " declares " + (header.dataStart() + header.dataLength()));
                    }
                    into.position(into.position() + n);
                    consumed[0] += n;
                }
            }
            @Override public void finish() throws IOException {
                if (in.read() >= 0) {
                    throw new CheckpointException(name + ": the stream goes on after the " + consumed[0] + " bytes the checkpoint"
                            + " declares (trailing data, or not one checkpoint)");
                }
            }
        });
    }

    /** Where the tensor data come from. */
    private interface DataSource {
        /** Fills {@code into} with the data bytes from {@code dataOffset} (called in data order). */
        void read(ByteBuffer into, long dataOffset) throws IOException;

        /** Called after the last tensor, before anything changes: the source holds nothing more. */
        void finish() throws IOException;
    }

    /** Checks every tensor (checksums included) and the source's end, then applies the plan. */
    private static LoadReport load(DeviceOptimizer opt, String name, Safetensors.Header header, LoadOptions options,
                                   DataSource source) throws IOException {
        Plan plan = validate(opt, name, header, options.isStrict());
        SchedulesAndScaler extras = schedulesAndScaler(opt, name, header.metadata(), plan.configs());
        java.util.OptionalLong roundingSeed = roundingSeed(header.metadata(), name);
        Map<Parameter, DeviceOptimizer.TensorSteps> tensorSteps = tensorSteps(opt, name, header.metadata(), plan, options);
        // Each loaded tensor's values, by its position in plan.loads(), kept until they are applied.
        LoadedValues data = new LoadedValues(plan.loads().size());
        LoadPositions positions = new LoadPositions(plan.loads());
        TensorMetadata checksums = new TensorMetadata(header.metadata(), "crc32c.");
        // Read and check every tensor before touching anything.
        ByteBuffer bytes = ByteBuffer.allocate(0); // reused from tensor to tensor, grown to the largest read
        CRC32C crc = new CRC32C(); // reset for each tensor
        for (Safetensors.Entry e : header.entries()) {
            int stored = checksums.find(e.name());
            if (stored < 0) throw new CheckpointException(name + ": tensor '" + e.name() + "' has no CRC32C");
            crc.reset();
            CheckpointQuantization.Part part = plan.layout().part(e.name());
            boolean isMap = part != null && part.map() != null; // always read: its 256 values are checked
            // An absmax is read with the 8-bit state it scales, when that is loaded.
            int index = part == null ? positions.of(e.name())
                    : isMap ? -1 : plan.quantizedLoads().getOrDefault(part.absmaxOf().codes().name(), -1);
            if (index < 0 && !isMap) {
                // Not loaded, yet checked: a damaged checkpoint is refused whatever it is loaded into.
                int block = (int) Math.min(BLOCK, e.end() - e.begin());
                if (bytes.capacity() < block) bytes = ByteBuffer.allocate(block);
                for (long at = e.begin(); at < e.end(); at += block) {
                    bytes.clear().limit((int) Math.min(block, e.end() - at));
                    source.read(bytes, at);
                    crc.update(bytes.array(), 0, bytes.limit());
                }
                checkCrc(name, e, header.metadata(), stored, crc);
                continue;
            }
            if (e.length() > Integer.MAX_VALUE - 8) {
                throw new CheckpointException(name + ": tensor '" + e.name() + "' has " + e.length()
                        + " elements; loading holds each tensor in one Java array (at most 2^31 - 9 elements)");
            }
            // The length and format matched this optimizer's tensor: this is the size of memory it already
            // has (an absmax: 4 bytes per 256 codes, as checked; a code map: 256 floats).
            int size = (int) (e.end() - e.begin());
            if (bytes.capacity() < size) bytes = ByteBuffer.allocate(size);
            bytes.clear().limit(size);
            source.read(bytes, e.begin());
            crc.update(bytes.array(), 0, size);
            checkCrc(name, e, header.metadata(), stored, crc);
            int length = (int) e.length();
            byte[] raw = bytes.array();
            if (isMap) {
                float[] table = new float[length];
                decode(e.dtype(), raw, length, table, 0);
                CheckpointQuantization.checkMap(name, e, part.map(), table);
            } else if (part != null) {
                float[] absmax = new float[length];
                decode(e.dtype(), raw, length, absmax, 0);
                CheckpointQuantization.checkAbsmax(name, e, absmax);
                data.placeAbsmax(index, absmax);
            } else if (e.dtype() == Dtype.U8) {
                data.placeCodes(index, java.util.Arrays.copyOf(raw, length));
            } else {
                decode(e.dtype(), raw, length, data.place(index, length), data.offset(index));
            }
        }
        // Converted 8-bit states become float32 values, written as any other tensor's (quantized
        // again, block by block, into an 8-bit state of another map).
        for (Map.Entry<String, Integer> q : plan.quantizedLoads().entrySet()) {
            CheckpointQuantization.Stored s = plan.layout().quantized().get(q.getKey());
            if (!CheckpointQuantization.copiesCodes(s, plan.loads().get(q.getValue()).buffer())) data.dequantize(q.getValue(), s.map());
        }
        source.finish();
        opt.applyCheckpoint(plan.configs(), plan.step(), plan.skippedSteps(), plan.gradScale(), extras.schedules(),
                extras.scaler(), tensorSteps, roundingSeed, () -> {
            for (int i = 0; i < plan.loads().size(); i++) {
                Item item = plan.loads().get(i);
                byte[] codes = data.codes(i);
                if (codes != null) { // an 8-bit state into one of the same map: exactly as saved
                    QuantizedBuffer q = (QuantizedBuffer) item.buffer();
                    q.writeCodes(0, codes, 0, codes.length);
                    float[] absmax = data.absmax(i);
                    q.writeAbsmax(0, absmax, 0, absmax.length);
                    continue;
                }
                float[] values = data.array(i);
                int at = data.offset(i);
                int length = (int) item.buffer().length();
                for (int from = 0; from < length; from += BLOCK) {
                    item.buffer().copyFrom(values, at + from, from, Math.min(BLOCK, length - from));
                }
            }
        });
        return plan.report();
    }

    /** {@code length} little-endian values of a float {@code dtype} from {@code raw} into {@code values[at...]}. */
    private static void decode(Dtype dtype, byte[] raw, int length, float[] values, int at) {
        if (dtype == Dtype.F32) {
            for (int i = 0; i < length; i++) values[at + i] = Float.intBitsToFloat(getLittleEndian(raw, i * Float.BYTES, Float.BYTES));
        } else {
            for (int i = 0; i < length; i++) {
                values[at + i] = Conversions.widen(dtype.precision(), (short) getLittleEndian(raw, i * Short.BYTES, Short.BYTES));
            }
        }
    }

    /**
     * The loaded tensors' values, held until every tensor has been checked: small ones side by side
     * in shared arrays, a larger one in an array of its own. An array per tensor made 10^5 tiny
     * tensors' values 3 * 10^5 objects, which the collector copied while the load went on. An
     * 8-bit state's codes and absmax are held as they are.
     */
    private static final class LoadedValues {
        /** Elements per shared array (4 MiB); a tensor of more elements (or none) gets its own. */
        private static final int SHARED = 1 << 20;
        private final float[][] arrays;
        private final int[] offsets;
        private float[] shared;
        private int sharedUsed;
        /** The codes and absmax of the loaded 8-bit states, by position; made at the first one. */
        private byte[][] codes;
        private float[][] absmax;

        LoadedValues(int tensors) {
            arrays = new float[tensors][];
            offsets = new int[tensors];
        }

        void placeCodes(int index, byte[] tensorCodes) {
            if (codes == null) codes = new byte[arrays.length][];
            codes[index] = tensorCodes;
        }

        void placeAbsmax(int index, float[] tensorAbsmax) {
            if (absmax == null) absmax = new float[arrays.length][];
            absmax[index] = tensorAbsmax;
        }

        /** The codes of the 8-bit state at {@code index}, null for a tensor of floats. */
        byte[] codes(int index) {
            return codes == null ? null : codes[index];
        }

        float[] absmax(int index) {
            return absmax[index];
        }

        /** Turns the 8-bit state at {@code index} into its float32 values (in an array of their own). */
        void dequantize(int index, CodeMap map) {
            float[] values = new float[codes[index].length];
            BlockwiseQuantization.dequantizeBlocks(codes[index], absmax[index], map, values);
            arrays[index] = values;
            offsets[index] = 0;
            codes[index] = null;
            absmax[index] = null;
        }

        /** Room for tensor {@code index}'s {@code length} values: the array, from {@link #offset}. */
        float[] place(int index, int length) {
            if (length > SHARED || length == 0) {
                arrays[index] = new float[length];
                return arrays[index];
            }
            if (shared == null || sharedUsed + length > SHARED) {
                shared = new float[SHARED];
                sharedUsed = 0;
            }
            arrays[index] = shared;
            offsets[index] = sharedUsed;
            sharedUsed += length;
            return shared;
        }

        float[] array(int index) {
            return arrays[index];
        }

        int offset(int index) {
            return offsets[index];
        }
    }

    /** Refuses the tensor unless the metadata value at {@code stored} is its CRC32C. */
    private static void checkCrc(String name, Safetensors.Entry e, Safetensors.Metadata metadata, int stored, CRC32C crc)
            throws CheckpointException {
        if (!metadata.valueIsCrcHex(stored, crc.getValue())) {
            String actual = Safetensors.crcHex(crc.getValue());
            throw new CheckpointException(name + ": tensor '" + e.name() + "' fails its CRC32C (stored " + metadata.valueAt(stored)
                    + ", computed " + actual + "): the data are damaged");
        }
    }

    /** What a load restores: the tensors to copy (this optimizer's order), the scalars, and the report. */
    // ---- Learning-rate schedules and the dynamic loss scaler: metadata entries only, written only when
    // used, so that a checkpoint without them is byte for byte what earlier versions wrote ----

    private static final String SCHEDULE = "schedule.";
    /** What the schedules count ({@link ScheduleClock}), written only when it is not the default. */
    private static final String SCHEDULE_CLOCK = "schedule_clock";
    private static final String SCALER = "loss_scaler.";
    /** The seed of stochastic rounding's random bits, written only when it is on. */
    private static final String ROUNDING_SEED = "stochastic_rounding_seed";

    /**
     * {@code schedule.N} for each group N with a schedule; {@code schedule_clock} unless it is
     * {@link ScheduleClock#APPLIED_STEPS}; {@code loss_scaler.*} with dynamic loss scaling.
     */
    private static void putSchedulesAndScaler(DeviceOptimizer opt, Map<String, String> metadata) {
        if (opt.scheduleClock() != ScheduleClock.APPLIED_STEPS) metadata.put(SCHEDULE_CLOCK, opt.scheduleClock().name());
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
        metadata.put(SCALER + "growth_factor", Double.toString(config.growthFactor()));
        metadata.put(SCALER + "backoff_factor", Double.toString(config.backoffFactor()));
        metadata.put(SCALER + "growth_interval", Integer.toString(config.growthInterval()));
    }

    // ---- Per-tensor step counts and frozen flags: metadata entries only, written only for a tensor
    // whose count differs from the optimizer's or that is frozen, so that a checkpoint of an
    // optimizer that never froze or added a tensor late is byte for byte what earlier versions wrote ----

    private static final String TENSOR_STEP = "tensor_step.";
    private static final String FROZEN = "frozen.";

    /** {@code tensor_step.NAME} where a tensor's own count is not {@code step}; {@code frozen.NAME} for a frozen tensor. */
    private static void putTensorSteps(DeviceOptimizer opt, Map<String, String> metadata, long step) {
        for (ParamGroup g : opt.groups()) {
            for (Parameter p : g.parameterList()) {
                long own = p.ownSteps(step);
                if (own != step) metadata.put(TENSOR_STEP + p.name(), Long.toString(own));
                if (p.frozen()) metadata.put(FROZEN + p.name(), "true");
            }
        }
    }

    /**
     * Reads and checks each tensor's own step count and frozen flag; changes nothing. A tensor the
     * entries do not name counts with the optimizer and is not frozen. In a non-strict load a
     * tensor some of whose states were not loaded restarts at its own step 0 (its next update is its
     * own step 1, as a tensor added now) and keeps its frozen flag (in a load of one shard file of
     * several, {@link LoadOptions#oneShardOfMany}, it keeps its count: another file restores it); entries naming no tensor of this
     * optimizer are ignored there (the tensor is reported as unexpected), refused in a strict load.
     */
    private static Map<Parameter, DeviceOptimizer.TensorSteps> tensorSteps(DeviceOptimizer opt, String name,
                                                                          Safetensors.Metadata m, Plan plan, LoadOptions options)
            throws CheckpointException {
        boolean strict = options.isStrict();
        Map<String, Long> counts = new LinkedHashMap<>();
        Map<String, Boolean> frozen = new LinkedHashMap<>();
        for (int i = 0; i < m.size(); i++) { // by position, keys compared in place: 10^5 tensors' pairs make no garbage
            boolean isStep = m.keyStartsWith(i, TENSOR_STEP);
            if (!isStep && !m.keyStartsWith(i, FROZEN)) continue;
            String key = m.keyAt(i);
            String tensor = key.substring(isStep ? TENSOR_STEP.length() : FROZEN.length());
            if (opt.parameter(tensor).isEmpty()) {
                if (!strict) continue;
                throw new CheckpointException(name + ": " + key + " names no parameter of this optimizer" + NON_STRICT_HINT);
            }
            if (isStep) {
                long count = number(m, name, key);
                if (count > plan.step()) {
                    throw new CheckpointException(name + ": " + key + " is " + count + ", more than the optimizer's step " + plan.step()
                            + ": a tensor cannot have taken more steps than its optimizer");
                }
                counts.put(tensor, count);
            } else {
                String value = m.valueAt(i);
                if (!value.equals("true") && !value.equals("false")) {
                    throw new CheckpointException(name + ": " + key + " '" + value + "' is neither true nor false");
                }
                frozen.put(tensor, Boolean.parseBoolean(value));
            }
        }
        // Only a non-strict load can leave states unloaded: a strict one loads every tensor or fails.
        java.util.Set<String> loadedKeys = new java.util.HashSet<>();
        if (!strict) loadedKeys.addAll(plan.report().loaded());
        // Most tensors count with the optimizer: one value for them all.
        DeviceOptimizer.TensorSteps withOptimizer = new DeviceOptimizer.TensorSteps(plan.step(), false);
        List<Parameter> parameters = new ArrayList<>();
        for (ParamGroup g : opt.groups()) parameters.addAll(g.parameterList());
        Map<Parameter, DeviceOptimizer.TensorSteps> out = new LinkedHashMap<>(parameters.size() * 4 / 3 + 1);
        for (Parameter p : parameters) {
            boolean statesLoaded = true;
            if (!strict) for (StateKind kind : p.stateBuffers().keySet()) statesLoaded &= loadedKeys.contains(p.name() + "/" + kind.stateName());
            if (strict || statesLoaded) {
                Long count = counts.get(p.name());
                Boolean isFrozen = frozen.get(p.name());
                out.put(p, count == null && isFrozen == null ? withOptimizer
                        : new DeviceOptimizer.TensorSteps(count != null ? count : plan.step(), isFrozen != null && isFrozen));
            } else if (!options.keepsMissingSteps()) { // else another shard file of the save restores them
                out.put(p, new DeviceOptimizer.TensorSteps(0, p.frozen()));
            }
        }
        return out;
    }

    /** Each group's schedule (null: none) and the scaler's state (null without dynamic scaling). */
    private record SchedulesAndScaler(List<LrSchedule> schedules, LossScaleState scaler) {}

    /**
     * Reads and checks the schedules and the scaler's state; changes nothing. The checkpoint's
     * schedule clock must be this optimizer's: the counter it restores (applied steps, or applied and
     * skipped ones) places every schedule.
     */
    private static SchedulesAndScaler schedulesAndScaler(DeviceOptimizer opt, String name, Safetensors.Metadata m,
                                                         List<OptimizerConfig> configs) throws CheckpointException {
        String savedClock = m.getOrDefault(SCHEDULE_CLOCK, ScheduleClock.APPLIED_STEPS.name());
        if (java.util.Arrays.stream(ScheduleClock.values()).noneMatch(c -> c.name().equals(savedClock))) {
            throw new CheckpointException(name + ": " + SCHEDULE_CLOCK + " '" + savedClock + "' is not a schedule clock");
        }
        if (!savedClock.equals(opt.scheduleClock().name())) {
            throw new CheckpointException(name + ": " + SCHEDULE_CLOCK + " is " + savedClock + " in the checkpoint, "
                    + opt.scheduleClock() + " in this optimizer: its schedules would resume at another step; build the optimizer"
                    + " with optScheduleClock(ScheduleClock." + savedClock + ")");
        }
        List<LrSchedule> schedules = new ArrayList<>();
        for (int g = 0; g < configs.size(); g++) schedules.add(null);
        for (int i = 0; i < m.size(); i++) {
            if (!m.keyStartsWith(i, SCHEDULE)) continue;
            String key = m.keyAt(i);
            String index = key.substring(SCHEDULE.length());
            int g = index.matches("0|[1-9][0-9]{0,8}") ? Integer.parseInt(index) : -1;
            if (g < 0 || g >= configs.size()) {
                throw new CheckpointException(name + ": " + key + " names no group of this optimizer (" + configs.size() + " groups)");
            }
            try {
                LrSchedule schedule = LrSchedule.fromText(m.valueAt(i));
                schedule.segments().requireFiniteWith(configs.get(g).learningRate(), "group " + g);
                schedules.set(g, schedule);
            } catch (IllegalArgumentException ex) {
                throw new CheckpointException(name + ": " + key + ": " + ex.getMessage(), ex);
            }
        }
        DynamicLossScaling config = opt.dynamicLossScaling().orElse(null);
        boolean saved = m.containsKey(SCALER + "scale");
        if (config == null && !saved) return new SchedulesAndScaler(schedules, null);
        if (config == null || !saved) {
            throw new CheckpointException(name + ": the checkpoint was saved " + (saved ? "with" : "without") + " dynamic loss scaling,"
                    + " this optimizer runs " + (config != null ? "with" : "without") + " it");
        }
        requireScalerFactor(m, name, SCALER + "growth_factor", config.growthFactor());
        requireScalerFactor(m, name, SCALER + "backoff_factor", config.backoffFactor());
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

    /**
     * A scaler factor of the checkpoint, which must be this optimizer's: the double as saved now,
     * or its float32 as files written before the factors were doubles hold it.
     */
    private static void requireScalerFactor(Map<String, String> m, String name, String key, double factor)
            throws CheckpointException {
        if (Float.toString((float) factor).equals(m.get(key))) return;
        require(m, name, key, Double.toString(factor));
    }

    /**
     * @param layout the checkpoint's 8-bit states and their parts
     * @param quantizedLoads the loaded 8-bit states: the name of their codes, their position in {@code loads}
     */
    private record Plan(List<OptimizerConfig> configs, long step, long skippedSteps, double gradScale, List<Item> loads,
                        CheckpointQuantization.Layout layout, Map<String, Integer> quantizedLoads, LoadReport report) {}

    private static final String NON_STRICT_HINT = "; a non-strict load (LoadOptions.builder().optStrict(false)) loads the"
            + " tensors that match and reports the others";

    private static Plan validate(DeviceOptimizer opt, String name, Safetensors.Header header, boolean strict)
            throws CheckpointException {
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
        if (m.containsKey(ROUNDING_SEED) != opt.stochasticRoundingSeed().isPresent()) {
            throw new CheckpointException(name + ": the checkpoint was saved " + (m.containsKey(ROUNDING_SEED) ? "with" : "without")
                    + " stochastic rounding of the params, this optimizer runs " + (m.containsKey(ROUNDING_SEED) ? "without" : "with")
                    + " it (DeviceOptimizer.Builder.optStochasticRounding)");
        }
        roundingSeed(m, name); // a damaged seed is refused before anything changes
        String paramsSaved = m.getOrDefault(PARAMS_SAVED, "true");
        if (!paramsSaved.equals("true") && !paramsSaved.equals("false")) {
            throw new CheckpointException(name + ": " + PARAMS_SAVED + " '" + paramsSaved + "' is neither true nor false");
        }
        boolean withParams = paramsSaved.equals("true");
        List<ParamGroup> groups = opt.groups();
        long savedGroups = number(m, name, "groups");
        if (savedGroups != groups.size()) {
            if (savedGroups > groups.size()) {
                throw new CheckpointException(name + ": groups is " + savedGroups + " in the checkpoint, " + groups.size() + " in this"
                        + " optimizer: add groups until it has as many (a load restores every saved group's configuration)");
            }
            if (strict) {
                throw new CheckpointException(name + ": groups is " + savedGroups + " in the checkpoint, " + groups.size() + " in this"
                        + " optimizer; a non-strict load (LoadOptions.builder().optStrict(false)) restores the saved groups into this"
                        + " optimizer's first " + savedGroups + " and leaves the others (a new head's group) as they are");
            }
        }
        // A non-strict load into more groups (fine-tuning with a new head in its own group): the extra
        // groups keep their configuration and schedule, and their tensors are missing from the checkpoint.
        List<Integer> extraGroups = new ArrayList<>();
        for (int g = (int) savedGroups; g < groups.size(); g++) extraGroups.add(g);
        List<OptimizerConfig> configs = new ArrayList<>();
        for (ParamGroup g : groups.subList(0, (int) savedGroups)) {
            Map<String, String> fields = new LinkedHashMap<>();
            String prefix = "group." + g.index() + ".";
            Safetensors.Metadata all = header.metadata();
            for (int i = 0; i < all.size(); i++) {
                if (all.keyStartsWith(i, prefix)) fields.put(all.keyAt(i).substring(prefix.length()), all.valueAt(i));
            }
            OptimizerConfig config;
            try {
                config = ConfigCodec.decode(fields);
            } catch (IllegalArgumentException e) {
                throw new CheckpointException(name + ": group " + g.index() + ": " + e.getMessage(), e);
            }
            if (config.getClass() == g.currentConfig().getClass()) {
                config = Algorithms.of(config).resumedConfigOf(config, g.currentConfig());
            }
            UpdatePlan savedPlan = UpdatePlan.of(config);
            if (savedPlan.kernel() == g.plan().kernel() && savedPlan.structure() != g.plan().structure()) {
                Algorithm<?> savedAlgorithm = Algorithms.of(config);
                throw new CheckpointException(name + ": group " + g.index() + " was saved running "
                        + savedAlgorithm.describeStructure(savedPlan.structure()) + ", but this optimizer's group runs "
                        + savedAlgorithm.describeStructure(g.plan().structure()) + ": build the group with the saved configuration");
            }
            if (!savedPlan.sameLayout(g.plan())) {
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

        CheckpointQuantization.Layout layout = CheckpointQuantization.layout(name, header);
        // An 8-bit state's absmax and code map are read with it, never matched or reported on their own.
        EntriesByName entries = new EntriesByName(layout.parts().isEmpty() ? header.entries()
                : header.entries().stream().filter(e -> layout.part(e.name()) == null).toList());
        TensorMetadata groupOf = new TensorMetadata(header.metadata(), "group_of.");
        String[] groupText = new String[groups.size()];
        for (int g = 0; g < groupText.length; g++) groupText[g] = Integer.toString(g);
        List<Item> loads = new ArrayList<>();
        List<String> loaded = new ArrayList<>(); // the loads' names, the checkpoint's strings
        List<String> missing = new ArrayList<>();
        Map<String, String> mismatched = new LinkedHashMap<>();
        Map<String, String> converted = new LinkedHashMap<>();
        Map<String, Integer> quantizedLoads = new HashMap<>(); // an 8-bit state's codes name -> its position in loads
        for (Item item : items(opt, withParams)) {
            Safetensors.Entry e = entries.remove(item);
            if (e == null) {
                if (strict) throw new CheckpointException(name + ": the checkpoint lacks tensor '" + item.key() + "'" + NON_STRICT_HINT);
                missing.add(item.key());
                continue;
            }
            CheckpointQuantization.Stored stored = e.dtype() == Dtype.U8 ? layout.quantized().get(e.name()) : null;
            String difference = null, conversion = null;
            if (e.length() != item.buffer().length()) {
                difference = "has " + e.length() + " elements, this optimizer's has " + item.buffer().length() + " (wrong shape)";
            } else if (!java.util.Arrays.equals(e.dims(), item.dims())) { // null: one-dimensional
                difference = "has shape " + java.util.Arrays.toString(e.shape()) + ", this optimizer's has "
                        + java.util.Arrays.toString(item.dims() == null ? new long[] {e.length()} : item.dims());
            } else {
                // Between 8-bit and float states either way: converted (and reported), in a strict load too.
                conversion = CheckpointQuantization.conversion(e, stored, item.buffer(), item.isState());
                boolean sameFormat = item.buffer() instanceof QuantizedBuffer ? stored != null : e.dtype().precision() == item.buffer().precision();
                if (conversion == null && !sameFormat) {
                    difference = "is " + (stored != null ? "U8 (8-bit codes)" : e.dtype().precision()) + ", this optimizer's is "
                            + item.buffer().precision();
                }
            }
            if (difference != null) {
                if (strict) throw new CheckpointException(name + ": tensor '" + item.key() + "' " + difference + NON_STRICT_HINT);
                mismatched.put(item.key(), difference);
                continue;
            }
            // The group a tensor was saved in must be its group now (strict); a non-strict load
            // matches by name, length and format only.
            if (strict) require(name, groupOf, e.name(), groupText[item.group()]);
            if (stored != null) quantizedLoads.put(e.name(), loads.size());
            if (conversion != null) converted.put(e.name(), conversion);
            loads.add(item);
            loaded.add(e.name());
        }
        if (strict && !entries.isEmpty()) {
            throw new CheckpointException(name + ": the checkpoint has tensor '" + entries.remainingNames().get(0)
                    + "', which this optimizer does not have (" + entries.size() + " extra)" + NON_STRICT_HINT);
        }
        if (loads.isEmpty() && !(missing.isEmpty() && mismatched.isEmpty() && entries.isEmpty())) {
            // Only a non-strict load gets here. It would restore the step counters, the groups' settings
            // and schedules and the loss scale of another run, and no tensor of it: almost surely the
            // wrong file or renamed parameters, which a LoadReport listing nothing loaded hides too well.
            throw new CheckpointException(name + ": a non-strict load matched none of this optimizer's tensors (" + missing.size()
                    + " missing, " + mismatched.size() + " of another length or format, " + entries.size() + " in the checkpoint"
                    + " only); refused, since it would only move the step counters, the groups' settings and schedules and the"
                    + " loss scale of another run onto these tensors: check that the checkpoint is this model's and that its"
                    + " parameter names are the ones registered");
        }
        LoadReport report = new LoadReport(loaded, missing, entries.remainingNames(), mismatched, withParams, extraGroups, converted);
        return new Plan(configs, step, skipped, gradScale, loads, layout, quantizedLoads, report);
    }

    /** {@link #require(Map, String, String, String)} for a per-tensor entry ({@code group_of.TENSOR}). */
    private static void require(String name, TensorMetadata metadata, String tensor, String expected) throws CheckpointException {
        int at = metadata.find(tensor);
        if (at < 0 || !metadata.metadata.valueIs(at, expected)) {
            throw new CheckpointException(name + ": " + metadata.prefix + tensor + " is " + (at < 0 ? null : metadata.metadata.valueAt(at))
                    + " in the checkpoint, " + expected + " in this optimizer");
        }
    }

    /**
     * The checkpoint's tensors by name, for matching them with this optimizer's: a tensor is taken
     * out once matched, the others remain (in data order). A checkpoint of this optimizer's tensors
     * names them in the order they are asked for, which is followed without a lookup (a map of
     * 10^5 names costs several cache misses per lookup); from the first tensor out of that order
     * on, a map of the ones not yet taken.
     */
    private static final class EntriesByName {
        private final List<Safetensors.Entry> inOrder;
        /** inOrder[0, next) were taken in order. */
        private int next;
        /** After the first tensor out of order, the ones not yet taken, in data order; null before. */
        private Map<String, Safetensors.Entry> rest;

        EntriesByName(List<Safetensors.Entry> inOrder) {
            this.inOrder = inOrder;
        }

        /** Takes the tensor of {@code item} out; null when there is none (left). */
        Safetensors.Entry remove(Item item) {
            if (rest == null) {
                if (next < inOrder.size() && item.isNamed(inOrder.get(next).name())) return inOrder.get(next++);
                rest = new LinkedHashMap<>();
                for (Safetensors.Entry e : inOrder.subList(next, inOrder.size())) rest.put(e.name(), e);
            }
            return rest.remove(item.key());
        }

        boolean isEmpty() {
            return rest == null ? next == inOrder.size() : rest.isEmpty();
        }

        int size() {
            return rest == null ? inOrder.size() - next : rest.size();
        }

        /** The names not taken, in data order. */
        List<String> remainingNames() {
            if (rest != null) return List.copyOf(rest.keySet());
            return inOrder.subList(next, inOrder.size()).stream().map(Safetensors.Entry::name).toList();
        }
    }

    /**
     * Where a tensor of the checkpoint is in the list of those loaded. The checkpoint's tensors come
     * in data order, which for a checkpoint of this optimizer is the list's order: the next one is
     * checked first, and only a tensor out of that order costs a map (built then).
     */
    private static final class LoadPositions {
        private final List<Item> loads;
        private int next;
        private Map<String, Integer> byName;

        LoadPositions(List<Item> loads) {
            this.loads = loads;
        }

        /** The position of the tensor named {@code key}, or -1 when it is not loaded. */
        int of(String key) {
            if (next < loads.size() && loads.get(next).isNamed(key)) return next++;
            if (byName == null) {
                byName = new HashMap<>(loads.size() * 4 / 3 + 1);
                for (int i = 0; i < loads.size(); i++) byName.put(loads.get(i).key(), i);
            }
            Integer position = byName.get(key);
            if (position == null) return -1;
            next = position + 1;
            return position;
        }
    }

    /**
     * The metadata entries {@code PREFIX + tensor} for one prefix, looked up tensor by tensor. A save
     * writes them in data order ({@code group_of.T}, {@code crc32c.T} for each tensor T, after the
     * optimizer's own entries), so the entry sought is usually a step or two past the last one found:
     * the few entries from there are compared before the table is asked, and after the table's
     * answer the search goes on from the entry it found. (A table lookup of a key made for it costs
     * cache misses and a string; asked for every tensor, they made most of a load's time.)
     */
    private static final class TensorMetadata {
        /** Entries compared from the cursor on before the table is asked. */
        private static final int WINDOW = 4;
        final String prefix;
        final Safetensors.Metadata metadata;
        /** Where the next tensor's entry is looked for first: past the last one found. */
        private int next;

        TensorMetadata(Safetensors.Metadata metadata, String prefix) {
            this.prefix = prefix;
            this.metadata = metadata;
        }

        /** The position of {@code prefix + tensor} in the metadata, or -1. */
        int find(String tensor) {
            for (int i = next, end = Math.min(metadata.size(), next + WINDOW); i < end; i++) {
                if (metadata.keyIs(i, prefix, tensor)) {
                    next = i + 1;
                    return i;
                }
            }
            int found = metadata.indexOf(prefix + tensor);
            if (found >= 0) next = found + 1;
            return found;
        }
    }

    private static void require(Map<String, String> m, String name, String key, String expected) throws CheckpointException {
        if (!expected.equals(m.get(key))) {
            throw new CheckpointException(name + ": " + key + " is " + m.get(key) + " in the checkpoint, " + expected + " in this optimizer");
        }
    }

    /** The saved seed of stochastic rounding, or empty where it was off. */
    private static java.util.OptionalLong roundingSeed(Map<String, String> m, String name) throws CheckpointException {
        String seed = m.get(ROUNDING_SEED);
        if (seed == null) return java.util.OptionalLong.empty();
        try {
            return java.util.OptionalLong.of(Long.parseLong(seed));
        } catch (NumberFormatException e) {
            throw new CheckpointException(name + ": " + ROUNDING_SEED + " '" + seed + "' is not a 64-bit integer");
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

    private static void readFully(String name, SeekableByteChannel channel, ByteBuffer into, long position) throws IOException {
        channel.position(position);
        int limit = into.limit();
        while (into.hasRemaining()) {
            // A block per read: the JDK reads a file into a heap buffer through a temporary direct
            // buffer as large as the read (40 MB of fresh memory for the header of 10^5 tensors).
            into.limit((int) Math.min(limit, (long) into.position() + BLOCK));
            int n = channel.read(into);
            into.limit(limit);
            if (n < 0) throw new CheckpointException(name + ": unexpected end of data at byte " + channel.position() + " (truncated)");
        }
    }

    /** A read-only channel over a caller's array (never written: loads only read). */
    private static final class ByteArrayChannel implements SeekableByteChannel {
        private final byte[] bytes;
        private long position;

        ByteArrayChannel(byte[] bytes) {
            this.bytes = bytes;
        }

        @Override public int read(ByteBuffer dst) {
            if (position >= bytes.length) return -1;
            int n = (int) Math.min(dst.remaining(), bytes.length - position);
            dst.put(bytes, (int) position, n);
            position += n;
            return n;
        }
        @Override public int write(ByteBuffer src) { throw new java.nio.channels.NonWritableChannelException(); }
        @Override public long position() { return position; }
        @Override public SeekableByteChannel position(long p) { position = p; return this; }
        @Override public long size() { return bytes.length; }
        @Override public SeekableByteChannel truncate(long size) { throw new java.nio.channels.NonWritableChannelException(); }
        @Override public boolean isOpen() { return true; }
        @Override public void close() {}
    }
}
