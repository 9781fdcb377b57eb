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
}
