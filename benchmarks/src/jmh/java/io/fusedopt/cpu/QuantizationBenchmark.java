package io.fusedopt.cpu;

import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * 8-bit blockwise quantization of one CPU_FAST tile ({@link FastStepProgram#TILE} elements, 16
 * blocks, in L1/L2 as in a step), in nanoseconds per element: {@code reference} is
 * {@link BlockwiseQuantization} (the binary search), {@code table} {@link QuantizationTable}'s
 * loops, {@code vector} what CPU_FAST runs with the Vector API: {@link VectorQuantization} to
 * quantize, the table's loop to dequantize (a gather of the map values was slower than it, see
 * VectorQuantization). The values are an Adam state's: signed
 * gaussians whose scale varies by block over many binades for the signed map, their squares for
 * the unsigned one.
 *
 * <p>Package io.fusedopt.cpu, to reach the package-private classes; compiled with the tests, so
 * {@code benchmarks/run-jmh.sh QuantizationBenchmark} runs it like the benchmarks in io.fusedopt.bench.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--add-modules=jdk.incubator.vector")
public class QuantizationBenchmark {
    private static final int ELEMENTS = FastStepProgram.TILE;
    private static final int BLOCK = BlockwiseQuantization.BLOCK;

    @Param({"SIGNED", "UNSIGNED"})
    public CodeMap map;

    @Param({"reference", "table", "vector"})
    public String implementation;

    private float[] values;
    private byte[] codes;
    private float[] absmax;
    private float[] decoded;
    private QuantizationTable table;
    private VectorQuantization vectors;

    @Setup(Level.Trial)
    public void setUp() {
        if (implementation.equals("vector") && !(VectorSupport.available() && VectorQuantization.SUPPORTED)) {
            throw new IllegalStateException("no vectors here: " + VectorSupport.reason());
        }
        Random random = new Random(8);
        values = new float[ELEMENTS];
        for (int i = 0; i < ELEMENTS; i++) {
            float blockScale = (float) Math.pow(10, -3 - (i / BLOCK) % 6);
            float v = (float) random.nextGaussian() * blockScale;
            values[i] = map == CodeMap.SIGNED ? v : v * v;
        }
        codes = new byte[ELEMENTS];
        absmax = new float[ELEMENTS / BLOCK];
        decoded = new float[ELEMENTS];
        BlockwiseQuantization.quantizeBlocks(values, map, codes, absmax);
        table = QuantizationTable.of(map);
        vectors = implementation.equals("vector") ? new VectorQuantization() : null;
    }

    /** Absmax and codes of every block of the tile. */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS)
    public byte[] quantize() {
        switch (implementation) {
            case "reference" -> {
                for (int b = 0, from = 0; from < ELEMENTS; b++, from += BLOCK) {
                    absmax[b] = BlockwiseQuantization.quantizeBlock(values, from, BLOCK, map, codes, from);
                }
            }
            case "table" -> table.quantizeBlocks(values, 0, ELEMENTS, codes, 0, absmax, 0);
            default -> vectors.quantizeBlocks(table, values, 0, ELEMENTS, codes, 0, absmax, 0);
        }
        return codes;
    }

    /** Every block of the tile decoded. */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS)
    public float[] dequantize() {
        switch (implementation) {
            case "reference" -> {
                for (int b = 0, from = 0; from < ELEMENTS; b++, from += BLOCK) {
                    BlockwiseQuantization.dequantizeBlock(codes, from, BLOCK, absmax[b], map, decoded, from);
                }
            }
            default -> table.dequantizeBlocks(codes, 0, ELEMENTS, absmax, 0, decoded, 0);
        }
        return decoded;
    }
}
