package io.fusedopt;

/**
 * How a load matches the checkpoint's tensors with this optimizer's
 * ({@link DeviceOptimizer#load(java.nio.file.Path, LoadOptions)} and the stream and byte-array
 * forms). The default is strict, as {@link DeviceOptimizer#load(java.nio.file.Path)}.
 *
 * <pre>{@code
 * LoadReport report = opt.load(file, LoadOptions.builder().optStrict(false).build());
 * if (!report.isComplete()) log.warn("partial optimizer state: " + report);
 * }</pre>
 */
public final class LoadOptions {
    private static final LoadOptions DEFAULTS = builder().build();

    private final boolean strict;
    /** One shard file of several (ShardedCheckpoint): a tensor it lacks keeps its step count, which another file restores. */
    private final boolean oneShardOfMany;

    private LoadOptions(Builder builder) {
        this.strict = builder.strict;
        this.oneShardOfMany = false;
    }

    private LoadOptions(boolean strict, boolean oneShardOfMany) {
        this.strict = strict;
        this.oneShardOfMany = oneShardOfMany;
    }

    /**
     * A non-strict load of one shard file of a sharded checkpoint (ShardedCheckpoint): the tensors
     * it lacks keep their step counts (a non-strict load otherwise restarts them, as tensors with
     * fresh states), since another file of the same save restores them.
     */
    static LoadOptions oneShardOfMany() {
        return new LoadOptions(false, true);
    }

    /** Whether the tensors a non-strict load leaves keep their step counts ({@link #oneShardOfMany()}). */
    boolean keepsMissingSteps() {
        return oneShardOfMany;
    }

    /** Strict: every tensor must match. */
    public static LoadOptions defaults() {
        return DEFAULTS;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Whether a tensor that is missing, unexpected or of another length or format refuses the load. */
    public boolean isStrict() {
        return strict;
    }

    @Override
    public String toString() {
        return "LoadOptions[strict=" + strict + "]";
    }

    /** Builds {@link LoadOptions}; every setting is optional. */
    public static final class Builder {
        private boolean strict = true;

        private Builder() {}

        /**
         * Strict (the default): the checkpoint's tensors and this optimizer's must be the same
         * names, lengths and formats, or the load is refused and nothing changes. Non-strict: the
         * tensors whose names, lengths and formats match are loaded, the others are left as they
         * are, and the {@link LoadReport} lists them (missing, unexpected, mismatched); the
         * checkpoint may also have fewer groups than this optimizer, whose extra groups then keep
         * their configuration and schedule ({@link LoadReport#extraGroups()}: a new head's group
         * when fine-tuning). Either way the algorithm, the storage formats (but for 8-bit and
         * float states, converted either way: {@link LoadReport#converted()}) and the saved groups'
         * state layout must match, and the step counters, every saved group's hyper-parameters and
         * the loss scale are restored; the whole checkpoint is checked (checksums included) before
         * anything changes. A non-strict load that matches none of this optimizer's tensors is
         * refused (see {@link LoadReport}).
         */
        public Builder optStrict(boolean v) {
            strict = v;
            return this;
        }

        public LoadOptions build() {
            return new LoadOptions(this);
        }
    }
}
