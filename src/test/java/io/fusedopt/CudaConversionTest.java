package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.fusedopt.cuda.CudaConversionCheck;
import io.fusedopt.internal.Conversions;
import java.util.Random;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The device's bf16/fp16 conversions equal the Java ones bit for bit: specials, every midpoint, random floats. */
@Tag("gpu")
class CudaConversionTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    @Test
    void deviceConversionsEqualJavaBitForBit() {
        int specials = 1 << 16;
        int random = 1 << 20;
        float[] values = new float[3 * specials + random];
        int k = 0;
        for (int h = 0; h < specials; h++) {
            values[k++] = Conversions.fp16ToFloat((short) h);                    // every fp16 value
            values[k++] = Conversions.bf16ToFloat((short) h);                    // every bf16 value (NaNs, subnormals)
            float next = Conversions.fp16ToFloat((short) (h + 1));
            values[k++] = (float) (((double) values[k - 3] + next) / 2);         // fp16 midpoints (ties)
        }
        Random r = new Random(3);
        while (k < values.length) values[k++] = Float.intBitsToFloat(r.nextInt());

        CudaConversionCheck.Result device = CudaConversionCheck.roundTrip(0, values);
        for (int i = 0; i < values.length; i++) {
            float x = values[i];
            String at = "input " + x + " (0x" + Integer.toHexString(Float.floatToRawIntBits(x)) + ")";
            assertEquals(Conversions.floatToBf16(x), device.bf16()[i], "bf16 of " + at);
            assertEquals(Conversions.floatToFp16(x), device.fp16()[i], "fp16 of " + at);
            assertEquals(Float.floatToIntBits(Conversions.bf16ToFloat(device.bf16()[i])),
                    Float.floatToIntBits(device.bf16Back()[i]), "bf16 decode of " + at);
            assertEquals(Float.floatToIntBits(Conversions.fp16ToFloat(device.fp16()[i])),
                    Float.floatToIntBits(device.fp16Back()[i]), "fp16 decode of " + at);
        }
    }
}
