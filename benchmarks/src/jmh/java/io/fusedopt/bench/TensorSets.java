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
        return transformer(512, 48, 32768, 1024);
    }

    /**
     * The same decoder shape at any size: width {@code d}, {@code layers} layers, a {@code vocabulary}
     * x d token embedding and a {@code positions} x d position embedding (14 tensors a layer, 5 more).
     */
    public static long[] transformer(int d, int layers, int vocabulary, int positions) {
        if (d < 1 || layers < 0 || vocabulary < 1 || positions < 1) {
            throw new IllegalArgumentException("a transformer set needs d, vocabulary and positions >= 1 and layers >= 0, got d=" + d
                    + ", layers=" + layers + ", vocabulary=" + vocabulary + ", positions=" + positions);
        }
        List<Long> sizes = new ArrayList<>();
        sizes.add((long) vocabulary * d);
        sizes.add((long) positions * d);
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

    /**
     * {@code count} tiny tensors of 1 to 4096 elements, spread over that range by a multiplicative
     * hash of the index (the launch-bound case; PyTorch's side reads the same lengths).
     */
    public static long[] tiny(int count) {
        if (count < 1) throw new IllegalArgumentException("a tiny set needs at least 1 tensor, got " + count);
        long[] sizes = new long[count];
        for (int t = 0; t < count; t++) sizes[t] = 1 + (t * 2654435761L) % 4096;
        return sizes;
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
