package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.fusedopt.internal.UpdatePlan;
import org.junit.jupiter.api.Test;

/** Bytes per parameter of each update, counted from what its kernel reads and writes. */
class TrafficTest {
    private static int bytes(OptimizerConfig config) {
        return UpdatePlan.of(config).bytesPerElement();
    }

    @Test
    void bytesPerParameterMatchTheKernels() {
        assertEquals(12, bytes(Sgd.builder().build()));                                    // r p g, w p
        assertEquals(20, bytes(Momentum.builder().setMomentum(0.9).build()));              // + b
        assertEquals(20, bytes(RmsProp.builder().build()));                                // + s
        assertEquals(28, bytes(RmsProp.builder().optCentered(true).build()));              // + s, a
        assertEquals(36, bytes(RmsProp.builder().optCentered(true).optMomentum(0.9).build()));
        assertEquals(28, bytes(Adam.builder().build()));                                   // + m, v
        assertEquals(28, bytes(Adam.adamW().build()));
        assertEquals(36, bytes(Adam.builder().optAmsgrad(true).build()));                  // + m, v, vmax
        assertEquals(20, bytes(Adagrad.builder().build()));                                // + h
    }

    /** 8-bit states: a code byte per state element each way, and a float absmax per block of 256 each way. */
    @Test
    void eightBitStatesMoveACodeByteAndTheirBlocksAbsmax() {
        UpdatePlan adam = UpdatePlan.of(Adam.builder().build());
        long n = 1L << 24;
        // r p g m v, w p m v; 2 states * 2 directions * 4 bytes per 256 elements
        assertEquals(n * (4 + 4 + 1 + 1 + 4 + 1 + 1) + 2 * 2 * 4 * (n / 256), adam.quantizedBytesPerStep(n, Precision.FP32, Precision.FP32, false));
        assertEquals(16.0625, adam.quantizedBytesPerStep(n, Precision.FP32, Precision.FP32, false) / (double) n);
        // bf16 param and grad with an fp32 master: r master g m v, w master p m v; a partial last block counts whole
        assertEquals(5000 * (4 + 2 + 2 + 4 + 2 + 2) + 2 * 2 * 4 * 20,
                adam.quantizedBytesPerStep(5000, Precision.BF16, Precision.BF16, true));
        assertEquals(4096 * (12 + 2) + 2 * 4 * 16, UpdatePlan.of(Adagrad.builder().build())
                .quantizedBytesPerStep(4096, Precision.FP32, Precision.FP32, false));
    }
}
