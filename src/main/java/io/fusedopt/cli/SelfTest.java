package io.fusedopt.cli;

import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.NonFinitePolicy;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.Parameter;
import io.fusedopt.Precision;
import io.fusedopt.StateKind;
import io.fusedopt.StateQuantization;
import io.fusedopt.TensorBuffer;
import io.fusedopt.internal.Algorithms;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Runs every variant on random data on the CPU reference and compares, bit for bit, every param,
 * master and state element computed by the fast CPU backend and (when a GPU is usable) by CUDA.
 * Each variant runs in each {@link Storage}: float32; bf16 params and grads with fp32 master
 * weights, bf16 states, a loss scale of 1024, global-norm clipping and the non-finite check; and,
 * for the algorithms with 8-bit states when the large tensor has enough elements for them, float32
 * params with 8-bit states, scaled and clipped the same way.
 */
final class SelfTest {
    private SelfTest() {}

    /**
     * Bytes per element of the large tensor that one run keeps on a backend, at most: param,
     * gradient and three states in float32 (the bf16 runs keep less, master weights included).
     */
    static final int TENSOR_BYTES_PER_ELEMENT = 20;

    /**
     * Java heap per element of the large tensor the selftest may need: at its peak about 44 bytes
     * (the reference's values kept for comparison, the values being compared, a gradient array,
     * and the CPU reference's own tensors while it runs), with room left for the collector.
     */
    static final int HEAP_BYTES_PER_ELEMENT = 64;

    /** One backend's comparison with the reference: compared elements and those that differ. */
    public record Verdict(boolean ran, long compared, long differing, String note) {
        static Verdict skipped(String why) {
            return new Verdict(false, 0, 0, why);
        }

        /** Ran, compared at least one element, and found none differing. */
        public boolean bitExact() {
            return ran && compared > 0 && differing == 0;
        }

        /** "bit-exact", "DIFFERS (n of m)" or "skipped". */
        public String text() {
            if (!ran) return "skipped";
            if (compared == 0) return "NOTHING COMPARED";
            return differing == 0 ? "bit-exact" : "DIFFERS (" + differing + " of " + compared + ")";
        }
    }

    public record Row(String variant, String storage, Verdict cpuFast, Verdict cuda) {}

    /** How a run stores its tensors, with the label the rows show. */
    enum Storage {
        FP32("fp32"),
        MIXED("bf16+master, scaled, clipped"),
        EIGHT_BIT_STATES("8-bit states, scaled, clipped");

        final String label;

        Storage(String label) {
            this.label = label;
        }

        /** Whether {@code config} runs in this storage with a large tensor of {@code size} elements. */
        boolean applies(OptimizerConfig config, int size) {
            return this != EIGHT_BIT_STATES
                    || (Algorithms.of(config).hasQuantizedStates() && size >= StateQuantization.MIN_ELEMENTS);
        }
    }

    /** The rows of every variant, in {@link VariantCatalog} order, in the storages that apply to it, in {@link Storage} order. */
    public static List<Row> run(int size, int steps, long seed, boolean withCuda) {
        if (size < 1 || steps < 1) {
            // No step, or no element, compares nothing: the verdict would be a pass that checked nothing.
            throw new IllegalArgumentException("the selftest needs a size >= 1 and steps >= 1, got size " + size + ", steps " + steps);
        }
        List<Row> rows = new ArrayList<>();
        for (Map.Entry<String, OptimizerConfig> variant : VariantCatalog.all().entrySet()) {
            for (Storage storage : Storage.values()) {
                if (!storage.applies(variant.getValue(), size)) continue;
                List<float[]> reference = outcome(Backend.CPU, variant.getValue(), storage, size, steps, seed);
                Verdict fast = compare(reference, outcome(Backend.CPU_FAST, variant.getValue(), storage, size, steps, seed));
                Verdict cuda = withCuda
                        ? compare(reference, outcome(Backend.CUDA, variant.getValue(), storage, size, steps, seed))
                        : Verdict.skipped("no usable GPU");
                rows.add(new Row(variant.getKey(), storage.label, fast, cuda));
            }
        }
        return rows;
    }

    /** Every param, master and state element after {@code steps} steps on two tensors ({@code size} and 3 elements). */
    static List<float[]> outcome(Backend backend, OptimizerConfig config, Storage storage, int size, int steps, long seed) {
        DeviceOptimizer.Builder builder = DeviceOptimizer.builder(config).optBackend(backend);
        boolean mixed = storage == Storage.MIXED;
        Precision format = mixed ? Precision.BF16 : Precision.FP32;
        boolean scaled = storage != Storage.FP32;
        float scale = scaled ? 1024f : 1f;
        if (scaled) builder.optMaxGradNorm(1.0).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP);
        if (mixed) builder.optStatePrecision(Precision.BF16);
        if (storage == Storage.EIGHT_BIT_STATES) builder.optStateQuantization(StateQuantization.BLOCKWISE_8BIT);
        try (DeviceOptimizer opt = builder.build()) {
            Random random = new Random(seed);
            ParamGroup group = opt.addGroup();
            int[] sizes = {size, 3};
            List<Parameter> params = new ArrayList<>();
            List<TensorBuffer> grads = new ArrayList<>();
            for (int i = 0; i < sizes.length; i++) {
                TensorBuffer p = opt.allocate(sizes[i], format);
                TensorBuffer g = opt.allocate(sizes[i], format);
                p.copyFrom(gaussian(random, sizes[i], 1f));
                params.add(group.add("t" + i, p, g, Algorithms.of(config).exampleShape(sizes[i]))); // a matrix for Muon
                grads.add(g);
            }
            if (scaled) opt.setGradScale(scale);
            for (int t = 0; t < steps; t++) {
                for (TensorBuffer g : grads) g.copyFrom(gaussian(random, (int) g.length(), scale));
                opt.step();
            }
            List<float[]> values = new ArrayList<>();
            for (Parameter p : params) {
                values.add(p.param().toArray());
                p.masterWeights().ifPresent(m -> values.add(m.toArray()));
                for (StateKind kind : p.stateKinds()) values.add(p.state(kind).toArray());
            }
            return values;
        }
    }

    static Verdict compare(List<float[]> expected, List<float[]> actual) {
        long compared = 0, differing = 0;
        for (int i = 0; i < expected.size(); i++) {
            float[] a = expected.get(i), b = actual.get(i);
            for (int k = 0; k < a.length; k++) {
                compared++;
                if (Float.floatToIntBits(a[k]) != Float.floatToIntBits(b[k])) differing++;
            }
        }
        return new Verdict(true, compared, differing, "");
    }

    private static float[] gaussian(Random random, int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) random.nextGaussian() * scale;
        return v;
    }
}
