package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.fusedopt.GpuTests;
import io.fusedopt.internal.BlockwiseQuantization;
import io.fusedopt.internal.BlockwiseQuantization.CodeMap;
import java.util.Random;
import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * kernels/fusedopt_quant.cuh equals {@link BlockwiseQuantization} bit for bit: the codes and
 * absmax of kernels/quant.cu's fusedopt_quantize_blocks, and what fusedopt_dequantize_blocks reads
 * back, for both maps, on random blocks and on blocks of zeros, subnormals, huge values, NaN and
 * infinities, with a partial last block; launched as CudaEngine launches and with an odd grid.
 */
@Tag("gpu")
class CudaBlockwiseQuantizationTest {
    private static final int BLOCK = BlockwiseQuantization.BLOCK;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void deviceCodesAbsmaxAndReadBackEqualJava() {
        float[] values = testValues();
        int n = values.length;
        int blocks = BlockwiseQuantization.blocks(n);
        try (CudaEngine engine = new CudaEngine(0)) {
            engine.makeCurrent();
            long[] allocations = new long[5];
            try {
                long in = allocations[0] = Driver.allocate(4L * n);
                long map = allocations[1] = Driver.allocate(4L * BlockwiseQuantization.CODES);
                long codes = allocations[2] = Driver.allocate(n);
                long absmax = allocations[3] = Driver.allocate(4L * blocks);
                long out = allocations[4] = Driver.allocate(4L * n);
                copyIn(in, values);
                CUfunction quantize = engine.modules().function("quant", "fusedopt_quantize_blocks");
                CUfunction dequantize = engine.modules().function("quant", "fusedopt_dequantize_blocks");
                for (CodeMap codeMap : CodeMap.values()) {
                    copyIn(map, codeMap.table());
                    byte[] javaCodes = new byte[n];
                    float[] javaAbsmax = new float[blocks];
                    BlockwiseQuantization.quantizeBlocks(values, codeMap, javaCodes, javaAbsmax);
                    float[] javaBack = new float[n];
                    BlockwiseQuantization.dequantizeBlocks(javaCodes, javaAbsmax, codeMap, javaBack);

                    Pointer quantizeParams = Pointer.to(Pointer.to(Driver.pointerAt(in)), Pointer.to(new long[] {n}),
                            Pointer.to(Driver.pointerAt(map)), Pointer.to(Driver.pointerAt(codes)), Pointer.to(Driver.pointerAt(absmax)));
                    // As CudaEngine launches (256 threads, a block each), then fewer, odd-sized blocks that take several in turn.
                    for (int[] grid : new int[][] {null, {3, 96}}) {
                        String how = codeMap + (grid == null ? ", engine launch" : ", " + grid[0] + " blocks of " + grid[1] + " threads");
                        Driver.check(JCudaDriver.cuMemsetD8(Driver.pointerAt(codes), (byte) 0x5a, n), "cuMemsetD8");
                        Driver.check(JCudaDriver.cuMemsetD8(Driver.pointerAt(absmax), (byte) 0x5a, 4L * blocks), "cuMemsetD8");
                        if (grid == null) {
                            engine.launch(quantize, n, quantizeParams, "cuLaunchKernel(fusedopt_quantize_blocks)");
                        } else {
                            Driver.check(JCudaDriver.cuLaunchKernel(quantize, grid[0], 1, 1, grid[1], 1, 1, 0, null, quantizeParams, null),
                                    "cuLaunchKernel(fusedopt_quantize_blocks)");
                        }
                        Driver.check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize");
                        byte[] deviceCodes = new byte[n];
                        float[] deviceAbsmax = new float[blocks];
                        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(deviceCodes), Driver.pointerAt(codes), n), "cuMemcpyDtoH");
                        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(deviceAbsmax), Driver.pointerAt(absmax), 4L * blocks),
                                "cuMemcpyDtoH");
                        for (int b = 0; b < blocks; b++) {
                            assertEquals(Float.floatToRawIntBits(javaAbsmax[b]), Float.floatToRawIntBits(deviceAbsmax[b]),
                                    how + ": absmax bits of block " + b);
                        }
                        for (int i = 0; i < n; i++) {
                            assertEquals(javaCodes[i], deviceCodes[i], how + ": code of element " + i + " (" + values[i] + ")");
                        }
                    }

                    engine.launch(dequantize, n, Pointer.to(Pointer.to(Driver.pointerAt(codes)), Pointer.to(Driver.pointerAt(absmax)),
                            Pointer.to(new long[] {n}), Pointer.to(Driver.pointerAt(map)), Pointer.to(Driver.pointerAt(out))),
                            "cuLaunchKernel(fusedopt_dequantize_blocks)");
                    float[] deviceBack = new float[n];
                    Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(deviceBack), Driver.pointerAt(out), 4L * n), "cuMemcpyDtoH");
                    for (int i = 0; i < n; i++) {
                        // floatToIntBits: a NaN's payload is the hardware's (a GPU writes 0x7fffffff), not part of the rule.
                        assertEquals(Float.floatToIntBits(javaBack[i]), Float.floatToIntBits(deviceBack[i]),
                                codeMap + ": read back of element " + i + " (" + values[i] + ")");
                    }
                }
            } finally {
                for (long address : allocations) if (address != 0) engine.free(address);
            }
        }
    }

    private static void copyIn(long address, float[] values) {
        Driver.check(JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(address), Pointer.to(values), 4L * values.length), "cuMemcpyHtoD");
    }

    /** Blocks of every kind, the last one partial (77 elements). */
    private static float[] testValues() {
        Random random = new Random(29);
        int blocks = 14;
        float[] v = new float[(blocks - 1) * BLOCK + 77];
        for (int b = 0; b < blocks; b++) {
            int first = b * BLOCK, end = Math.min(v.length, first + BLOCK);
            float scale = (float) Math.pow(10, random.nextInt(12) - 6);
            for (int i = first; i < end; i++) {
                switch (b) {
                    case 0 -> v[i] = 0f;                                                  // all zero
                    case 1 -> v[i] = (i % 2 == 0) ? -0f : 0f;                              // signed zeros
                    case 2 -> v[i] = Float.MIN_VALUE * random.nextInt(1 << 12);            // subnormals
                    case 3 -> v[i] = (random.nextFloat() * 2 - 1) * Float.MAX_VALUE;       // huge
                    case 4 -> v[i] = Float.intBitsToFloat(random.nextInt());               // any bits (NaNs, infinities)
                    case 5 -> v[i] = random.nextInt(4) == 0 ? 0f : (float) random.nextGaussian();  // many zeros
                    default -> v[i] = (float) (random.nextGaussian() * scale);
                }
            }
        }
        v[6 * BLOCK + 3] = Float.NaN;
        v[7 * BLOCK + 100] = Float.POSITIVE_INFINITY;
        v[8 * BLOCK + 255] = Float.NEGATIVE_INFINITY;
        v[9 * BLOCK + 9] = -1e3f;  // the largest magnitude is negative: code 0 of the signed map
        // Map values and midpoints of the signed map, times the block's absmax of 1: ties and exact codes.
        CodeMap map = CodeMap.SIGNED;
        for (int j = 0; j < BLOCK; j++) {
            v[10 * BLOCK + j] = map.value(j);
            v[11 * BLOCK + j] = j < 255 ? (map.value(j) + map.value(j + 1)) * 0.5f : 1f;
        }
        return v;
    }
}
