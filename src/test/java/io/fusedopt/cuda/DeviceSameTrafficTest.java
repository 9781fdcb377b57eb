package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.fusedopt.Adam;
import io.fusedopt.GpuTests;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.Precision;
import io.fusedopt.Sgd;
import io.fusedopt.internal.Conversions;
import io.fusedopt.internal.UpdatePlan;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The GPU roofline kernel (kernels/traffic.cu) touches exactly the operands an update of the same
 * shape does, every element of them (the vector body and the scalar tail), and moves the bytes the
 * update's plan counts.
 */
@Tag("gpu")
class DeviceSameTrafficTest {
    /** Not a multiple of the kernel's 8-element width: the tail runs too. */
    private static final int ELEMENTS = 1005;

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void everyOperandOfEveryElementIsReadAndWritten() {
        for (boolean bf16Master : new boolean[] {false, true}) {
            float grad = bf16Master ? Conversions.bf16ToFloat(Conversions.floatToBf16(DeviceSameTraffic.GRAD))
                    : DeviceSameTraffic.GRAD;
            float twice = (DeviceSameTraffic.INITIAL + grad) + grad;   // two passes, one add each
            for (int states = 0; states <= 3; states++) {
                try (DeviceSameTraffic traffic = new DeviceSameTraffic(0, ELEMENTS, states, bf16Master)) {
                    traffic.run();
                    traffic.run();
                    String what = states + " states" + (bf16Master ? ", bf16 with master" : ", fp32");
                    assertArrayEquals(filled(twice), traffic.primaryValues(), "primary, " + what);
                    for (int j = 0; j < states; j++) assertArrayEquals(filled(twice), traffic.stateValues(j), "state " + j + ", " + what);
                    if (bf16Master) {
                        short[] bits = new short[ELEMENTS];
                        java.util.Arrays.fill(bits, Conversions.floatToBf16(twice));
                        assertArrayEquals(bits, traffic.param16Bits(), "bf16 model copy, " + what);
                    } else {
                        assertThrows(IllegalStateException.class, traffic::param16Bits);
                    }
                }
            }
        }
    }

    @Test
    void movesTheBytesOfTheUpdateItStandsFor() {
        OptimizerConfig[] configs = {Sgd.builder().build(), Momentum.builder().setMomentum(0.9).build(),
                Adam.builder().build(), Adam.builder().optAmsgrad(true).build()};
        for (OptimizerConfig config : configs) {
            UpdatePlan plan = UpdatePlan.of(config);
            for (boolean bf16Master : new boolean[] {false, true}) {
                Precision p = bf16Master ? Precision.BF16 : Precision.FP32;
                try (DeviceSameTraffic traffic = new DeviceSameTraffic(0, ELEMENTS, plan.usedSlots(), bf16Master)) {
                    assertEquals((long) plan.bytesPerElement(p, p, Precision.FP32, bf16Master) * ELEMENTS, traffic.bytesMoved(),
                            config + (bf16Master ? " bf16 with master" : " fp32"));
                }
            }
        }
    }

    @Test
    void refusesShapesNoUpdateHas() {
        assertThrows(IllegalArgumentException.class, () -> new DeviceSameTraffic(0, 0, 1, false));
        assertThrows(IllegalArgumentException.class, () -> new DeviceSameTraffic(0, 10, 4, false));
        assertThrows(IllegalArgumentException.class, () -> new DeviceSameTraffic(0, 10, -1, true));
    }

    private static float[] filled(float value) {
        float[] values = new float[ELEMENTS];
        java.util.Arrays.fill(values, value);
        return values;
    }
}
