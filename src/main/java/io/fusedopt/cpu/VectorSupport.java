package io.fusedopt.cpu;

import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdateKernel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * Whether {@link VectorKernels} can run in this JVM, decided once: the incubating module must be
 * resolved ({@code --add-modules jdk.incubator.vector}), its JDK 17 to 19 ByteBuffer entry points
 * must link, and a small Adam update must equal the reference bit for bit. Otherwise the fast
 * backend runs {@link ReferenceKernels} on every core, and {@link #reason()} says why.
 */
final class VectorSupport {
    private VectorSupport() {}

    /** Set to {@code false} to run the loop fallback although the Vector API works (tests, comparisons). */
    static final String PROPERTY = "fusedopt.cpu.vector";

    private static final boolean AVAILABLE;
    private static final String REASON;

    static {
        String reason;
        boolean available = false;
        if (!Boolean.parseBoolean(System.getProperty(PROPERTY, "true"))) {
            reason = "Vector API turned off by -D" + PROPERTY + "=false";
        } else if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            reason = "Vector API module not resolved: start the JVM with --add-modules jdk.incubator.vector";
        } else {
            try {
                reason = selfTest();
                available = reason == null;
                if (available) reason = "Vector API, " + VectorKernels.SPECIES.vectorBitSize() + "-bit vectors";
            } catch (LinkageError | RuntimeException e) {
                reason = "Vector API unusable in this JDK (" + Runtime.version() + "): " + e;
            }
        }
        AVAILABLE = available;
        REASON = reason;
    }

    static boolean available() {
        return AVAILABLE;
    }

    /** What the fast backend vectorizes with, or why it does not. */
    static String reason() {
        return REASON;
    }

    /** Null when an AMSGrad Adam step over 37 elements equals the reference bit for bit, else what differed. */
    private static String selfTest() {
        int n = 37;
        ByteBuffer[] vector = new ByteBuffer[5];
        FloatBuffer[] vectorFloats = new FloatBuffer[5];
        FloatBuffer[] reference = new FloatBuffer[5];
        for (int j = 0; j < 5; j++) {
            vector[j] = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder());
            vectorFloats[j] = vector[j].asFloatBuffer();
            reference[j] = FloatBuffer.allocate(n);
            for (int i = 0; i < n; i++) {
                float x = (float) Math.sin(1.7 * i + j) * (j == 3 || j == 4 ? 0.1f : 1f);
                vectorFloats[j].put(i, j >= 3 ? x * x : x);
                reference[j].put(i, j >= 3 ? x * x : x);
            }
        }
        float[] s = new float[StepScalars.SCALAR_STRIDE];
        StepScalars.compute(io.fusedopt.Adam.builder().optAmsgrad(true).optWeightDecay(0.01).build(), 3, s);
        int flags = KernelFlags.AMSGRAD | KernelFlags.L2_DECAY;
        VectorKernels.run(UpdateKernel.ADAM, vector, vectorFloats, 0, n, s, flags);
        ReferenceKernels.run(UpdateKernel.ADAM, reference, 0, n, s, flags);
        for (int j = 0; j < 5; j++) {
            for (int i = 0; i < n; i++) {
                if (Float.floatToIntBits(vectorFloats[j].get(i)) != Float.floatToIntBits(reference[j].get(i))) {
                    return "Vector API result differs from the reference (operand " + j + ", element " + i + ")";
                }
            }
        }
        return null;
    }
}
