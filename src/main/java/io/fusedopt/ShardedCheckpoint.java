package io.fusedopt;

import io.fusedopt.internal.Safetensors;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The checkpoint of a sharded optimizer, independent of the world size: a directory of one file
 * per rank ({@code rank-R-of-W.safetensors}), each an ordinary fusedopt checkpoint of the tensors
 * that rank owned, whole and by name. Any optimizer loads it whatever its own world size, taking
 * from the files the tensors it has ({@link ShardedOptimizer#load}, {@link ShardedOptimizer#loadShards}),
 * as DeepSpeed's universal checkpoints and {@code torch.distributed.checkpoint} do.
 */
final class ShardedCheckpoint {
    private ShardedCheckpoint() {}

    private static final Pattern FILE = Pattern.compile("rank-(\\d+)-of-(\\d+)\\.safetensors");

    /** The file rank {@code rank} of {@code worldSize} writes. */
    static String fileName(int rank, int worldSize) {
        return "rank-" + rank + "-of-" + worldSize + ".safetensors";
    }

    /**
     * The shard files of {@code directory}, by rank: one per rank of one world size, every rank's.
     *
     * @throws CheckpointException when there is none, a rank's is missing, or files of two world sizes are mixed
     */
    static List<Path> shardFiles(Path directory) throws IOException {
        Map<Integer, Path> byRank = new TreeMap<>();
        Set<Integer> worldSizes = new HashSet<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(directory, "rank-*-of-*.safetensors")) {
            for (Path f : files) {
                Matcher m = FILE.matcher(f.getFileName().toString());
                if (!m.matches()) continue;
                byRank.put(Integer.parseInt(m.group(1)), f);
                worldSizes.add(Integer.parseInt(m.group(2)));
            }
        } catch (java.nio.file.NoSuchFileException | java.nio.file.NotDirectoryException e) {
            throw new CheckpointException(directory + ": no such directory of shard files", e);
        }
        if (byRank.isEmpty()) throw new CheckpointException(directory + " holds no shard file (rank-R-of-W.safetensors)");
        if (worldSizes.size() != 1) {
            throw new CheckpointException(directory + " holds shard files of several world sizes " + worldSizes + ": the files of"
                    + " one save only, please");
        }
        int worldSize = worldSizes.iterator().next();
        for (int r = 0; r < worldSize; r++) {
            if (!byRank.containsKey(r)) throw new CheckpointException(directory + " lacks " + fileName(r, worldSize));
        }
        if (byRank.size() != worldSize) throw new CheckpointException(directory + " holds ranks beyond its world size " + worldSize);
        return List.copyOf(byRank.values());
    }

    /**
     * Loads into {@code opt} the tensors named {@code tensors} from {@code files}, each from the
     * one file that holds it (non-strict loads of those files only, which also restore the counters,
     * configurations, schedules and loss scale the files agree on).
     *
     * @return {@code opt}'s checkpoint from before the load (to undo it), or null when nothing was loaded
     * @throws CheckpointException when a tensor is in no file or in two, the files were saved at
     *     different steps, or a file's tensor does not fit; {@code opt} is as it was then
     */
    static byte[] load(DeviceOptimizer opt, List<Path> files, Collection<String> tensors) throws IOException {
        Map<String, Path> holder = new LinkedHashMap<>();
        List<Path> relevant = new ArrayList<>();
        String step = null;
        Path stepFile = null;
        for (Path f : files) {
            Safetensors.Header header = Checkpoint.header(f);
            String fileStep = header.metadata().get("step");
            if (step == null) {
                step = fileStep;
                stepFile = f;
            } else if (!step.equals(fileStep)) {
                throw new CheckpointException(f + " was saved at step " + fileStep + ", but " + stepFile + " at step " + step
                        + ": the shards of one save only, please");
            }
            Set<String> owners = new HashSet<>();
            for (Safetensors.Entry e : header.entries()) {
                int slash = e.name().lastIndexOf('/');
                if (slash > 0) owners.add(e.name().substring(0, slash));
            }
            boolean any = false;
            for (String t : tensors) {
                if (!owners.contains(t)) continue;
                Path previous = holder.put(t, f);
                if (previous != null) {
                    throw new CheckpointException("tensor '" + t + "' is in both " + previous + " and " + f + ": not the shards of one save");
                }
                any = true;
            }
            if (any) relevant.add(f);
        }
        for (String t : tensors) {
            if (!holder.containsKey(t)) throw new CheckpointException("tensor '" + t + "' is in none of " + files);
        }
        if (relevant.isEmpty()) return null;
        byte[] before = opt.saveToBytes();
        LoadOptions lenient = LoadOptions.oneShardOfMany();
        try {
            for (Path f : relevant) {
                LoadReport report = opt.load(f, lenient);
                for (Map.Entry<String, String> m : report.mismatched().entrySet()) {
                    String owner = m.getKey().substring(0, Math.max(0, m.getKey().lastIndexOf('/')));
                    if (f.equals(holder.get(owner))) {
                        throw new CheckpointException(f + ": tensor '" + m.getKey() + "' does not fit: " + m.getValue());
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            restore(opt, before, e);
            throw e;
        }
        return before;
    }

    /** Undoes a load with the checkpoint taken before it; a failure to is added to {@code cause}. */
    static void restore(DeviceOptimizer opt, byte[] before, Throwable cause) {
        try {
            opt.load(before);
        } catch (IOException | RuntimeException undo) {
            cause.addSuppressed(undo);
        }
    }
}
