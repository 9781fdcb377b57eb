package io.fusedopt.bench;

import java.util.ArrayList;
import java.util.List;

/** The tensor sets the benchmarks run: one large tensor, and a set shaped like a transformer. */
public final class TensorSets {
    private TensorSets() {}

    /** One tensor of {@code size} elements. */
    public static long[] one(long size) {
        return new long[] {size};
    }

    /**
     * A GPT-style decoder: 48 layers of width 512 (attention qkv and projection, two layer norms,
     * an MLP of width 2048, each weight with its bias), a 32768 x 512 token embedding (16.8M, the
     * largest), a 1024 x 512 position embedding, a final layer norm and a 64-element head bias (the
     * smallest): 581 tensors, about 168M parameters.
     */
    public static long[] transformer() {
        int d = 512, layers = 48;
        List<Long> sizes = new ArrayList<>();
        sizes.add(32768L * d);
        sizes.add(1024L * d);
        for (int l = 0; l < layers; l++) {
            sizes.add((long) d); sizes.add((long) d);                 // ln1 weight, bias
            sizes.add(3L * d * d); sizes.add(3L * d);                 // qkv
            sizes.add((long) d * d); sizes.add((long) d);             // attention projection
            sizes.add((long) d); sizes.add((long) d);                 // ln2
            sizes.add(4L * d * d); sizes.add(4L * d);                 // mlp up
            sizes.add(4L * d * d); sizes.add((long) d);               // mlp down
        }
        sizes.add((long) d); sizes.add((long) d);                     // final layer norm
        sizes.add(64L);                                               // a small head bias
        return sizes.stream().mapToLong(Long::longValue).toArray();
    }

    public static long[] named(String name, long size) {
        return switch (name) {
            case "one" -> one(size);
            case "transformer" -> transformer();
            default -> throw new IllegalArgumentException("unknown tensor set " + name);
        };
    }

    public static long total(long[] sizes) {
        long sum = 0;
        for (long s : sizes) sum += s;
        return sum;
    }
}
