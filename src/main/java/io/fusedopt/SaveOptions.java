package io.fusedopt;

/**
 * What a save writes ({@link DeviceOptimizer#save(java.nio.file.Path, SaveOptions)} and the stream
 * and byte-array forms). The defaults write everything, as {@link DeviceOptimizer#save(java.nio.file.Path)}.
 *
 * <pre>{@code
 * byte[] state = opt.saveToBytes(SaveOptions.builder().optIncludeParams(false).build());
 * }</pre>
 */
public final class SaveOptions {
    private static final SaveOptions DEFAULTS = builder().build();

    private final boolean includeParams;

    private SaveOptions(Builder builder) {
        this.includeParams = builder.includeParams;
    }

    /** Everything: params, master weights, states, counters, hyper-parameters, the loss scale. */
    public static SaveOptions defaults() {
        return DEFAULTS;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Whether the params ({@code name/param} tensors) are saved. */
    public boolean includesParams() {
        return includeParams;
    }

    @Override
    public String toString() {
        return "SaveOptions[includeParams=" + includeParams + "]";
    }

    /** Builds {@link SaveOptions}; every setting is optional. */
    public static final class Builder {
        private boolean includeParams = true;

        private Builder() {}

        /**
         * Whether to save the params (default true). Without them the checkpoint holds what
         * PyTorch's {@code optimizer.state_dict()} holds (states, step counters, hyper-parameters)
         * plus the master weights of 16-bit params and the loss scale, for embedding beside a model
         * checkpoint that has the params already. The metadata records it, and a load of such a
         * checkpoint leaves the params as they are.
         */
        public Builder optIncludeParams(boolean v) {
            includeParams = v;
            return this;
        }

        public SaveOptions build() {
            return new SaveOptions(this);
        }
    }
}
