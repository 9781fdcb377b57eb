package io.fusedopt.bench;

import io.fusedopt.Adam;
import io.fusedopt.Backend;
import io.fusedopt.DeviceOptimizer;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.ParamGroup;
import io.fusedopt.Precision;
import io.fusedopt.RmsProp;
import io.fusedopt.StateQuantization;
import io.fusedopt.TensorBuffer;
import io.fusedopt.cli.VariantCatalog;
import io.fusedopt.cuda.CudaProbe;
import io.fusedopt.internal.UpdatePlan;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Time of one optimizer step over a tensor set, per backend. On CUDA each invocation queues the
 * step and waits for it, so the time is the device time plus one launch and one synchronization.
 * {@link BenchmarkReport} turns the times into GB/s with the bytes each kernel moves per parameter
 * (in fp32: SGD 12, Momentum and RMSProp 20, Adam/AdamW 28; with bf16 params and grads and an fp32
 * master: 4 more than fp32 minus 2 per param and grad access) and the copy bandwidth of the same run.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class StepBenchmark {

    @Param({"adam", "adamw", "rmsprop", "momentum", "sgd", "adagrad", "adamax", "adadelta", "asgd", "rprop", "nadam", "radam", "lion", "ademamix", "lars", "lamb", "adafactor"})
    public String algorithm;

    @Param({"CPU", "CPU_FAST", "CUDA"})
    public String backend;

    /** "one": a single tensor of {@code size} elements; "transformer": {@link TensorSets#transformer()}. */
    @Param({"one", "transformer"})
    public String tensorSet;

    @Param({"16777216"})
    public int size;

    /**
     * "fp32", or "bf16-master": bf16 params and grads, fp32 master weights and states; either with
     * "-q8" ({@code -p storage=fp32-q8}): 8-bit blockwise states ({@link StateQuantization#BLOCKWISE_8BIT})
     * for the tensors of at least {@link StateQuantization#MIN_ELEMENTS} elements, for the
     * algorithms that have them (Adam/AdamW, Momentum, RMSProp, Adagrad, Lion, AdEMAMix).
     */
    @Param({"fp32", "bf16-master"})
    public String storage;

    private DeviceOptimizer optimizer;

    @Setup(Level.Trial)
    public void setUp() {
        if (backend.equals("CUDA")) CudaProbe.refuseBenchmarkOnEmulator();
        optimizer = DeviceOptimizer.builder(config(algorithm)).optBackend(Backend.valueOf(backend))
                .optStateQuantization(stateQuantization(storage)).build();
        addTensors(optimizer, TensorSets.named(tensorSet, size), paramPrecision(storage));
    }

    /** Registers one group of tensors of these lengths, params and grads filled with the tiles below. */
    static void addTensors(DeviceOptimizer optimizer, long[] sizes, Precision precision) {
        ParamGroup group = optimizer.addGroup();
        for (int t = 0; t < sizes.length; t++) {
            TensorBuffer p = optimizer.allocate(sizes[t], precision);
            TensorBuffer g = optimizer.allocate(sizes[t], precision);
            fill(p, PARAM_TILE);
            fill(g, GRAD_TILE);
            group.add("t" + t, p, g);
        }
    }

    /**
     * Gaussian values (params N(0, 1), grads N(0, 1e-4)) in a tile repeated over each tensor: the
     * time of a step does not depend on which normal numbers it sees, and tiling sets up the
     * 168M-element sets in a fraction of a second instead of drawing every element.
     */
    private static final float[] PARAM_TILE = gaussianTile(1, 1f);
    private static final float[] GRAD_TILE = gaussianTile(2, 1e-2f);

    private static float[] gaussianTile(long seed, float scale) {
        Random random = new Random(seed);
        float[] tile = new float[1 << 16];
        for (int i = 0; i < tile.length; i++) tile[i] = (float) random.nextGaussian() * scale;
        return tile;
    }

    private static void fill(TensorBuffer buffer, float[] tile) {
        for (long at = 0; at < buffer.length(); at += tile.length) {
            buffer.copyFrom(tile, 0, at, (int) Math.min(tile.length, buffer.length() - at));
        }
    }

    /**
     * The configuration measured for an algorithm name: the command line's benchmark set
     * ({@link VariantCatalog#benchmarkConfig}: adam, adamw, rmsprop, momentum (Nesterov 0.9), sgd,
     * adagrad) and the variants PyTorch's comparison and the roofline also need: heavy-ball momentum
     * 0.9, AMSGrad, and centered RMSProp with momentum 0.9 (the most state per element).
     */
    static OptimizerConfig config(String algorithm) {
        return switch (algorithm) {
            case "heavy-ball" -> Momentum.builder().setMomentum(0.9).build();
            case "amsgrad" -> Adam.builder().optAmsgrad(true).build();
            case "rmsprop-centered-momentum" -> RmsProp.builder().optCentered(true).optMomentum(0.9).build();
            default -> VariantCatalog.benchmarkConfig(algorithm);
        };
    }

    /** The suffix of a storage name with 8-bit states. */
    static final String QUANTIZED_SUFFIX = "-q8";

    /** The param and grad format of a storage name. */
    static Precision paramPrecision(String storage) {
        return switch (storage.endsWith(QUANTIZED_SUFFIX) ? storage.substring(0, storage.length() - QUANTIZED_SUFFIX.length()) : storage) {
            case "fp32" -> Precision.FP32;
            case "bf16-master" -> Precision.BF16;
            default -> throw new IllegalArgumentException("unknown storage " + storage);
        };
    }

    /**
     * Bytes one step of {@code algorithm} in {@code storage} moves over tensors of these lengths,
     * counted by {@link UpdatePlan} per tensor: 8-bit states ({@link UpdatePlan#quantizedBytesPerStep})
     * for the tensors of at least {@link StateQuantization#MIN_ELEMENTS} elements in a "-q8"
     * storage, float32 states otherwise; bf16 params and grads with an fp32 master in the
     * "bf16-master" storages.
     */
    static long bytesPerStep(String algorithm, String storage, long[] lengths) {
        UpdatePlan plan = UpdatePlan.of(config(algorithm));
        Precision p = paramPrecision(storage);
        boolean master = p != Precision.FP32;
        boolean quantized = stateQuantization(storage) == StateQuantization.BLOCKWISE_8BIT;
        long bytes = 0;
        for (long n : lengths) {
            bytes += quantized && n >= StateQuantization.MIN_ELEMENTS ? plan.quantizedBytesPerStep(n, p, p, master)
                    : (long) plan.bytesPerElement(p, p, Precision.FP32, master) * n;
        }
        return bytes;
    }

    /** How a storage name keeps the states: 8-bit blockwise for the "-q8" names. */
    static StateQuantization stateQuantization(String storage) {
        paramPrecision(storage); // an unknown name fails here
        return storage.endsWith(QUANTIZED_SUFFIX) ? StateQuantization.BLOCKWISE_8BIT : StateQuantization.NONE;
    }

    @Benchmark
    public void step() {
        optimizer.step();
        optimizer.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        optimizer.close();
    }
}
