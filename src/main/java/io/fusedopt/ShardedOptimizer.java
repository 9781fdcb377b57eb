package io.fusedopt;

import io.fusedopt.cuda.NcclCommunicator;
import io.fusedopt.internal.Check;
import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.StepProgram;
import java.nio.ByteBuffer;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * One rank of an optimizer whose master weights and states are sharded across the ranks of a
 * {@link Communicator} (ZeRO stage 1, as DeepSpeed's and PyTorch's ZeroRedundancyOptimizer shard
 * them): every rank registers the same tensors, with full params and gradients; each tensor is
 * owned, whole, by one rank, which alone keeps its states and master weights and updates it.
 *
 * <p>A {@link #step()}: the owners compute their tensors' gradient statistics (the partial sums
 * of squares of each chunk), the ranks exchange them and every rank adds all of them in the
 * registration order, as an unsharded step does, so the global gradient norm, the clipping
 * factor and the non-finite verdict are the unsharded step's bit for bit; each rank updates the
 * tensors it owns with the usual kernels; then the ranks all-gather the updated params. A sharded
 * step so equals the unsharded step of the same tensors bit for bit, at any world size.
 *
 * <p>The gradients are the caller's, already reduced across the ranks (the same on every rank, as
 * after an all-reduce); each rank reads only those of its own tensors. Ownership is per tensor,
 * never a cut through a tensor: a matrix optimizer (Muon) or a layer-wise one (LAMB, LARS) sees
 * its tensors whole, and 8-bit states keep their whole tensor's rule. A tensor goes, when it is
 * registered, to the rank that owns the fewest elements so far (the lowest such rank), so ranks
 * hold about 1/worldSize of the states, within the largest tensor.
 *
 * <p>Everything else (schedules, loss scaling, clipping, checkpoints of this rank's tensors, the
 * step report) is this rank's {@link #local()} optimizer's; set it the same way on every rank.
 * At the first step after a registration the ranks compare what they registered (names, shapes,
 * lengths, formats, groups and their configurations) and all fail with the same message, before
 * any update, when they differ. A rank that does not reach an exchange in time (it failed, stopped
 * or hangs) makes the others fail with a {@link CommunicationException} instead of waiting forever
 * ({@link LocalCommunicator}'s timeout).
 *
 * <p>On the CPU backends the ranks exchange through the host ({@link LocalCommunicator}: ranks as
 * threads of one JVM). On the CUDA backend they exchange through NCCL ({@link NcclCommunicator}, on
 * the optimizer's device and stream): the statistics all-gathered on the device inside the step,
 * the params broadcast from their owners after it, with no host round trip, and the whole step can
 * be captured into one CUDA graph ({@link #captureStep()}; docs/sharding.md).
 */
public final class ShardedOptimizer implements AutoCloseable {
    private final DeviceOptimizer local;
    private final Communicator communicator;
    private final int rank;
    private final int worldSize;
    private final List<Group> groups = new ArrayList<>();
    /** Every registered tensor, in registration order (groups in order, each group's tensors in order). */
    private final Map<String, Tensor> byName = new HashMap<>();
    /** Elements each rank owns: where the next tensor goes. */
    private final long[] ownedElements;
    private final double[] lanes = new double[GradientStatistics.LANES];
    /** Whether the ranks have compared their registrations since the last one. */
    private boolean verified;
    /** Groups and tensors registered so far: a capture replays only the registrations it was captured with. */
    private long registrations;

    /** A registered tensor: its buffers (full on every rank), its shape, its owner. */
    private record Tensor(String name, TensorBuffer param, TensorBuffer grad, long[] shape, int owner) {
        long chunks() {
            return SegmentTable.chunksOf(param.length());
        }
    }

    private ShardedOptimizer(DeviceOptimizer local, Communicator communicator) {
        this.local = local;
        this.communicator = communicator;
        this.rank = communicator.rank();
        this.worldSize = communicator.worldSize();
        this.ownedElements = new long[worldSize];
    }

    /**
     * This rank's optimizer, built by {@code builder}, sharded over {@code communicator}'s ranks.
     *
     * @throws IllegalArgumentException for a communicator whose world size is below 1 or whose rank
     *     is outside [0, world size)
     * @throws IllegalArgumentException also when the builder's backend is CUDA (or AUTO chose it)
     *     and the communicator is not an {@link NcclCommunicator} of the builder's device and stream
     */
    public static ShardedOptimizer create(DeviceOptimizer.Builder builder, Communicator communicator) {
        Check.notNull("builder", builder);
        Check.notNull("communicator", communicator);
        int worldSize = communicator.worldSize(), rank = communicator.rank();
        if (worldSize < 1) throw new IllegalArgumentException("the communicator's world size must be at least 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("the communicator's rank " + rank + " is outside [0, " + worldSize + ")");
        }
        DeviceOptimizer local = builder.build();
        if (local.backend() == Backend.CUDA) {
            String refused = null;
            if (!(communicator instanceof NcclCommunicator nccl)) {
                refused = "a sharded optimizer on the CUDA backend exchanges through NCCL: give it an NcclCommunicator, not a "
                        + communicator.getClass().getSimpleName();
            } else if (nccl.deviceOrdinal() != builder.deviceOrdinal() || nccl.streamHandle() != builder.cudaStream()) {
                refused = "the NcclCommunicator is on CUDA device " + nccl.deviceOrdinal() + ", stream 0x"
                        + Long.toHexString(nccl.streamHandle()) + ", but the optimizer on device " + builder.deviceOrdinal()
                        + ", stream 0x" + Long.toHexString(builder.cudaStream()) + ": build both for the same device and stream";
            }
            if (refused != null) {
                local.close();
                throw new IllegalArgumentException(refused);
            }
        }
        ShardedOptimizer sharded = new ShardedOptimizer(local, communicator);
        if (local.backend() != Backend.CUDA) local.shareStatistics(sharded::exchangeStatistics);
        return sharded;
    }

    /** This rank. */
    public int rank() {
        return rank;
    }

    /** The number of ranks. */
    public int worldSize() {
        return worldSize;
    }

    /**
     * This rank's optimizer: the tensors it owns, with their states and master weights. Its
     * schedules, loss scaling, step report and checkpoints are the sharded optimizer's; take steps
     * through {@link #step()} only (a step of its own would gather no params).
     */
    public DeviceOptimizer local() {
        return local;
    }

    /** A new group of the local optimizer's default configuration. */
    public Group addGroup() {
        return addGroup(local.defaults());
    }

    /**
     * A new group of {@code config} on every rank (each rank must add the same groups in the same
     * order).
     *
     * @throws IllegalArgumentException as {@link DeviceOptimizer#addGroup(OptimizerConfig)}
     */
    public Group addGroup(OptimizerConfig config) {
        Group group = new Group(local.addGroup(config));
        groups.add(group);
        registered();
        return group;
    }

    private void registered() {
        registrations++;
        verified = false;
    }

    /** The groups in the order they were added. */
    public List<Group> groups() {
        return List.copyOf(groups);
    }

    /**
     * The rank that owns the tensor named {@code name}.
     *
     * @throws IllegalArgumentException when no tensor of that name is registered
     */
    public int owner(String name) {
        Tensor t = byName.get(name);
        if (t == null) throw new IllegalArgumentException("no tensor named '" + name + "' is registered");
        return t.owner();
    }

    /** New memory of the local optimizer ({@link DeviceOptimizer#allocate(long, Precision)}). */
    public TensorBuffer allocate(long length, Precision precision) {
        return local.allocate(length, precision);
    }

    /** Bytes the local optimizer owns: its states and master weights, and the buffers it allocated. */
    public long ownedBytes() {
        return local.ownedBytes();
    }

    /**
     * One sharded step on every rank (each rank calls it): the statistics exchanged, this rank's
     * tensors updated, the params all-gathered. Under {@link NonFinitePolicy#THROW} every rank
     * throws the same {@link NonFiniteGradientException} for a skipped step, which changed nothing.
     *
     * @throws IllegalStateException on every rank, before any update, when the ranks registered
     *     different tensors or groups (the message names the first difference)
     * @throws CommunicationException when a rank does not reach an exchange in time
     */
    public void step() {
        verifyOnce();
        local.step();
        gatherParams();
    }

    /**
     * At the first step or capture after a registration: the ranks compare their registrations,
     * and on CUDA the step program gets the statistics exchange of the current tensors.
     */
    private void verifyOnce() {
        if (verified) return;
        verifyRegistrations();
        if (local.backend() == Backend.CUDA && communicator instanceof NcclCommunicator nccl) { // NCCL classes load on CUDA only
            local.shareStatistics(deviceStatisticsExchange(nccl));
        }
    }

    /** Every tensor's param in registration order, and its owner. */
    private record ParamOwners(List<TensorBuffer> params, int[] owners) {}

    private ParamOwners paramOwners() {
        List<Tensor> order = registrationOrder();
        List<TensorBuffer> params = new ArrayList<>(order.size());
        int[] owners = new int[order.size()];
        for (int i = 0; i < order.size(); i++) {
            params.add(order.get(i).param());
            owners[i] = order.get(i).owner();
        }
        return new ParamOwners(params, owners);
    }

    /** The CUDA step program's exchange for the current registrations: the owner of each chunk, in registration order. */
    private StepProgram.StatisticsExchange deviceStatisticsExchange(NcclCommunicator nccl) {
        List<Tensor> order = registrationOrder();
        long total = 0;
        for (Tensor t : order) total += t.chunks();
        int[] chunkOwners = new int[Math.toIntExact(total)];
        int g = 0;
        for (Tensor t : order) {
            for (long c = 0; c < t.chunks(); c++) chunkOwners[g++] = t.owner();
        }
        return nccl.statisticsExchange(chunkOwners);
    }

    /**
     * Saves the optimizer into {@code directory} (created if absent), every rank calling it: each
     * rank writes {@code rank-R-of-W.safetensors}, an ordinary checkpoint of the tensors it owns,
     * whole and by name, with their params. The directory loads at any world size
     * ({@link #load}) and into an unsharded optimizer ({@link #loadShards}).
     *
     * @throws IOException on every rank when any rank could not write its file (naming it)
     * @throws CommunicationException when a rank does not reach the exchange in time
     */
    public void save(Path directory) throws IOException {
        Check.notNull("directory", directory);
        String failure = "";
        try {
            Files.createDirectories(directory);
            local.save(directory.resolve(ShardedCheckpoint.fileName(rank, worldSize)));
        } catch (IOException | RuntimeException e) {
            failure = e.toString();
        }
        String first = firstFailure(failure);
        if (first != null) throw new IOException("the sharded save into " + directory + " failed: " + first);
    }

    /**
     * Loads a checkpoint into every rank (each calls it): a directory that {@link #save} wrote at
     * any world size, or one unsharded checkpoint file ({@link DeviceOptimizer#save}). Each rank
     * loads the tensors it owns, each from the file that holds it, then the ranks all-gather the
     * params; counters, configurations, schedules and the loss scale are the checkpoint's. All
     * ranks load or none does.
     *
     * @throws CheckpointException on every rank, naming the first rank's problem, when any rank
     *     cannot load (a tensor in no file or in two, files of two saves or world sizes, a tensor
     *     that does not fit, a damaged file); every rank is as it was then
     * @throws CommunicationException when a rank does not reach the exchange in time
     */
    public void load(Path source) throws IOException {
        Check.notNull("source", source);
        List<String> owned = new ArrayList<>();
        for (Tensor t : registrationOrder()) if (t.owner() == rank) owned.add(t.name());
        byte[] before = null;
        String failure = "";
        try {
            List<Path> files = Files.isDirectory(source) ? ShardedCheckpoint.shardFiles(source) : List.of(source);
            before = ShardedCheckpoint.load(local, files, owned);
        } catch (IOException | RuntimeException e) {
            failure = e.getMessage();
        }
        String first = firstFailure(failure);
        if (first != null) {
            CheckpointException e = new CheckpointException("the sharded load of " + source + " failed: " + first);
            if (before != null) ShardedCheckpoint.restore(local, before, e);
            throw e;
        }
        gatherParams();
    }

    /**
     * Loads a directory of shard files ({@link #save}, any world size) into an unsharded
     * optimizer that registered the same tensors: each tensor from the file that holds it.
     *
     * @throws CheckpointException when a tensor is in no file or in two, the files are of two saves
     *     or world sizes, or a tensor does not fit; {@code target} is as it was then
     */
    public static void loadShards(DeviceOptimizer target, Path directory) throws IOException {
        Check.notNull("target", target);
        Check.notNull("directory", directory);
        List<String> names = new ArrayList<>();
        for (ParamGroup g : target.groups()) for (Parameter p : g.parameters()) names.add(p.name());
        ShardedCheckpoint.load(target, ShardedCheckpoint.shardFiles(directory), names);
    }

    /**
     * Every rank's failure ({@code ""} for none) exchanged: the first rank's, as "rank R: ...", or
     * null when every rank succeeded. All ranks return the same.
     */
    private String firstFailure(String failure) {
        byte[][] all = communicator.allGather(failure.getBytes(StandardCharsets.UTF_8));
        for (int r = 0; r < worldSize; r++) {
            if (all[r].length > 0) return "rank " + r + ": " + new String(all[r], StandardCharsets.UTF_8);
        }
        return null;
    }

    /**
     * One sharded step captured for replay, every rank calling it: on CUDA one CUDA graph of the
     * whole step (the statistics' NCCL all-gather, the update, the params' NCCL broadcasts), so that
     * a step costs one launch; on the CPU backends a replay is {@link #step()}. Every rank must
     * replay its capture in the same order as the others (and take no other step between).
     *
     * @throws IllegalStateException as {@link #step()} for registrations that differ, and as
     *     {@link DeviceOptimizer#captureStep()}
     */
    public ShardedStepGraph captureStep() {
        if (local.backend() != Backend.CUDA) return new ShardedStepGraph(this, null, null, 0);
        NcclCommunicator nccl = (NcclCommunicator) communicator;
        verifyOnce();
        ParamOwners all = paramOwners();
        StepGraph graph = local.captureStep(stream -> nccl.broadcastParams(all.params(), all.owners(), stream));
        return new ShardedStepGraph(this, graph, nccl, registrations);
    }

    /** A captured sharded step ({@link #captureStep()}). */
    public static final class ShardedStepGraph implements AutoCloseable {
        private final ShardedOptimizer optimizer;
        private final StepGraph graph;
        private final NcclCommunicator nccl;
        /** The optimizer's registrations when captured. */
        private final long registrations;

        private ShardedStepGraph(ShardedOptimizer optimizer, StepGraph graph, NcclCommunicator nccl, long registrations) {
            this.optimizer = optimizer;
            this.graph = graph;
            this.nccl = nccl;
            this.registrations = registrations;
        }

        /**
         * One sharded step (every rank replays); on CUDA it waits for the step's collectives at most
         * the communicator's timeout, as {@link ShardedOptimizer#step()} does.
         *
         * @throws IllegalStateException on every rank, before anything runs, when a group or tensor was
         *     added since the capture (on any rank: a rank's own program may be unchanged, but its
         *     exchanges are not), and as {@link StepGraph#replay()}
         * @throws CommunicationException past the timeout
         */
        public void replay() {
            if (graph == null) {
                optimizer.step();
                return;
            }
            if (optimizer.registrations != registrations) {
                throw new IllegalStateException("this captured sharded step was captured before a group or tensor was added:"
                        + " capture the step again with captureStep() on every rank");
            }
            graph.replay();
            nccl.awaitCollectives();
        }

        @Override
        public void close() {
            if (graph != null) graph.close();
        }
    }

    /** Closes the local optimizer (not the communicator, which the caller owns). */
    @Override
    public void close() {
        local.close();
    }

    @Override
    public String toString() {
        return "ShardedOptimizer[rank " + rank + " of " + worldSize + ", " + byName.size() + " tensors, " + local + "]";
    }

    /**
     * The global sum of squares from this rank's partial sums (its tensors' chunks in registration
     * order): every rank's, placed at their tensors' positions in the global registration order,
     * added in the finalize order ({@link GradientStatistics#totalOf}), as the unsharded step adds
     * them.
     */
    private double exchangeStatistics(double[] partials, int count) {
        ByteBuffer mine = ByteBuffer.allocate(count * Double.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < count; i++) mine.putDouble(partials[i]);
        byte[][] all = communicator.allGather(mine.array());
        List<Tensor> order = registrationOrder();
        long total = 0;
        for (Tensor t : order) total += t.chunks();
        double[] global = new double[Math.toIntExact(total)];
        ByteBuffer[] from = new ByteBuffer[worldSize];
        for (int r = 0; r < worldSize; r++) from[r] = ByteBuffer.wrap(all[r]).order(ByteOrder.LITTLE_ENDIAN);
        int position = 0;
        for (Tensor t : order) {
            ByteBuffer source = from[t.owner()];
            for (long c = 0; c < t.chunks(); c++) {
                if (source.remaining() < Double.BYTES) throw sentOtherSums(t.owner());
                global[position++] = source.getDouble();
            }
        }
        for (int r = 0; r < worldSize; r++) if (from[r].hasRemaining()) throw sentOtherSums(r);
        return GradientStatistics.totalOf(global, global.length, lanes);
    }

    private static IllegalStateException sentOtherSums(int rank) {
        return new IllegalStateException("rank " + rank + " sent another number of gradient partial sums than its registered"
                + " tensors have chunks: the ranks' registrations differ");
    }

    /** Every registered tensor in registration order: groups in order, each group's tensors in order. */
    private List<Tensor> registrationOrder() {
        List<Tensor> order = new ArrayList<>(byName.size());
        for (Group g : groups) order.addAll(g.tensors);
        return order;
    }

    /**
     * Every rank's description of its registrations, compared line by line with rank 0's: all
     * ranks see all descriptions, so all throw the same message.
     */
    private void verifyRegistrations() {
        List<String> lines = new ArrayList<>();
        lines.add(groups.size() + " groups, " + byName.size() + " tensors");
        for (Group g : groups) {
            lines.add("group " + g.index() + ": " + g.local.config());
            for (Tensor t : g.tensors) {
                lines.add("group " + g.index() + " tensor '" + t.name() + "': " + t.param().length() + " elements, shape "
                        + Arrays.toString(t.shape()) + ", param " + t.param().precision() + ", grad " + t.grad().precision()
                        + ", owner " + t.owner());
            }
        }
        byte[][] all = communicator.allGather(String.join("\n", lines).getBytes(StandardCharsets.UTF_8));
        String[] reference = new String(all[0], StandardCharsets.UTF_8).split("\n", -1);
        for (int r = 1; r < worldSize; r++) {
            String[] other = new String(all[r], StandardCharsets.UTF_8).split("\n", -1);
            for (int i = 0; i < Math.max(reference.length, other.length); i++) {
                String expected = i < reference.length ? reference[i] : "(nothing)";
                String found = i < other.length ? other[i] : "(nothing)";
                if (!expected.equals(found)) {
                    throw new IllegalStateException("the ranks registered different tensors: rank " + r + " has '" + found
                            + "' where rank 0 has '" + expected + "'; every rank must add the same groups and tensors (names,"
                            + " shapes, lengths, formats, configurations) in the same order");
                }
            }
        }
        verified = true;
    }

    /**
     * Each rank's updated params to every other rank, which copies them into its own buffers: on
     * CUDA an NCCL broadcast of each tensor from its owner, on the stream; else through the host.
     */
    private void gatherParams() {
        if (local.backend() == Backend.CUDA && communicator instanceof NcclCommunicator nccl) { // NCCL classes load on CUDA only
            ParamOwners all = paramOwners();
            nccl.broadcastParams(all.params(), all.owners());
            nccl.awaitCollectives(); // bounds the wait for a rank that died by the communicator's timeout
            return;
        }
        List<Tensor> order = registrationOrder();
        long floats = 0;
        for (Tensor t : order) if (t.owner() == rank) floats += t.param().length();
        ByteBuffer mine = ByteBuffer.allocate(Math.toIntExact(floats * Float.BYTES)).order(ByteOrder.LITTLE_ENDIAN);
        for (Tensor t : order) {
            if (t.owner() == rank) for (float v : t.param().toArray()) mine.putFloat(v);
        }
        byte[][] all = communicator.allGather(mine.array());
        ByteBuffer[] from = new ByteBuffer[worldSize];
        for (int r = 0; r < worldSize; r++) from[r] = ByteBuffer.wrap(all[r]).order(ByteOrder.LITTLE_ENDIAN);
        for (Tensor t : order) {
            if (t.owner() == rank) continue;
            float[] values = new float[Math.toIntExact(t.param().length())];
            from[t.owner()].asFloatBuffer().get(values);
            from[t.owner()].position(from[t.owner()].position() + values.length * Float.BYTES);
            t.param().copyFrom(values);
        }
    }

    /** A group of every rank: its tensors (all of them), the local group holding this rank's. */
    public final class Group {
        private final ParamGroup local;
        private final List<Tensor> tensors = new ArrayList<>();

        private Group(ParamGroup local) {
            this.local = local;
        }

        /** The group's index, the same on every rank. */
        public int index() {
            return local.index();
        }

        /** The local group: this rank's tensors of the group, its configuration and schedule (set them alike on every rank). */
        public ParamGroup local() {
            return local;
        }

        /** {@link #add(String, TensorBuffer, TensorBuffer, long...)} without a shape: a vector. */
        public Optional<Parameter> add(String name, TensorBuffer param, TensorBuffer grad) {
            return add(name, param, grad, (long[]) null);
        }

        /**
         * Registers a tensor on this rank (every rank registers the same ones, in the same order):
         * its full param and its gradient (reduced across the ranks before each step), with an
         * optional shape as {@link ParamGroup#add(String, TensorBuffer, TensorBuffer, long...)}.
         *
         * @return the local parameter when this rank owns the tensor, else empty
         * @throws IllegalArgumentException as {@link ParamGroup#add(String, TensorBuffer, TensorBuffer, long...)}
         *     for a bad name, buffer or shape; nothing is registered then
         */
        public Optional<Parameter> add(String name, TensorBuffer param, TensorBuffer grad, long... shape) {
            Check.notNull("param", param);
            Check.notNull("grad", grad);
            DeviceOptimizer.requireValidName(name);
            if (byName.containsKey(name)) throw new IllegalArgumentException("a parameter named '" + name + "' already exists");
            long[] dims = local.checkedTensor(name, param, grad, shape);
            long[] fullShape = dims == null ? new long[] {param.length()} : dims;
            int owner = 0;
            for (int r = 1; r < worldSize; r++) if (ownedElements[r] < ownedElements[owner]) owner = r;
            Optional<Parameter> registered = owner == rank ? Optional.of(local.add(name, param, grad, fullShape)) : Optional.empty();
            Tensor t = new Tensor(name, param, grad, fullShape, owner);
            tensors.add(t);
            byName.put(name, t);
            ownedElements[owner] += param.length();
            registered();
            return registered;
        }
    }
}
