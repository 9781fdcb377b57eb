package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.cuda.DriverQuestions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The one place where CUDA and the CPU backends differ in bits (docs/algorithms.md, "NaN"): a
 * float32 NaN that an update makes. An H200 wrote 0x7FFFFFFF for every one (DriverQuestions,
 * 2026-12-04), generated or carried from a gradient with a payload; the CPU backends write what
 * Java's arithmetic gives. Both are NaN at the same elements. The emulator does what the H200 did,
 * so this test holds on both.
 */
@Tag("gpu")
class CudaNanBitsTest {
    private static final int GPU_NAN = 0x7FFFFFFF;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void float32NanResultsHaveTheGpusBitsAndStayNanOnTheCpu() {
        float[] params = {Float.POSITIVE_INFINITY, 1f, Float.NEGATIVE_INFINITY, 1f, 2f};
        float[] grads = {Float.POSITIVE_INFINITY, Float.intBitsToFloat(0x7FC01234), Float.NEGATIVE_INFINITY,
                Float.intBitsToFloat(0xFFC05678), 0.5f};
        int[] cuda = DriverQuestions.stepBits(Backend.CUDA, Precision.FP32, params, grads);
        int[] cpu = DriverQuestions.stepBits(Backend.CPU, Precision.FP32, params, grads);
        for (int i = 0; i < 4; i++) {
            assertEquals(GPU_NAN, cuda[i], "CUDA NaN bits at " + i);
            assertTrue(Float.isNaN(Float.intBitsToFloat(cpu[i])), "the CPU reference is NaN at " + i);
        }
        assertEquals(cpu[4], cuda[4], "a number stays bit-identical");
        assertEquals(1.5f, Float.intBitsToFloat(cuda[4]));
    }
}
