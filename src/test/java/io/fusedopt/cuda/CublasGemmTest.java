package io.fusedopt.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.fusedopt.CudaException;
import io.fusedopt.GpuTests;
import io.fusedopt.Precision;
import io.fusedopt.cuda.CublasGemm.Input;
import io.fusedopt.cuda.CublasGemm.Product;
import io.fusedopt.internal.Conversions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import jcuda.Pointer;
import jcuda.driver.CUgraphExec;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * cuBLAS through JCublas2: on the CUDA emulator its test double (src/test/cuda-emulator/cublas.cpp)
 * must give exactly the products its documented order defines (modelled here in Java), and on any
 * cuBLAS the products must be within fp32 (and bf16) rounding of exact ones.
 */
@Tag("gpu")
class CublasGemmTest {
    /** One fp32 rounding's relative error, in any direction (tensor cores may truncate their sums). */
    private static final double FP32_ROUNDING = 0x1p-23;
    private static final double BF16_UNIT_ROUNDOFF = 0x1p-8;

    /**
     * gamma(k + 2) = (k + 2)u / (1 - (k + 2)u): relative to the magnitudes, how far an fp32
     * evaluation of alpha * (k products summed) + beta * C, rounding each operation once with a
     * relative error of at most u, may be from the exact value, in any summation order (Higham,
     * Accuracy and Stability of Numerical Algorithms, 3.1).
     */
    private static double accumulationBound(int k) {
        double n = k + 2;
        return n * FP32_ROUNDING / (1 - n * FP32_ROUNDING);
    }

    @BeforeEach
    void requireCublas() {
        GpuTests.assumeCublas();
    }

    @Test
    void saxpyBaselineIsOneFusedMultiplyAddPerElement() {
        int n = 1000;
        SplittableRandom random = new SplittableRandom(1);
        float[] parameters = randomValues(random, n);
        float[] gradient = randomValues(random, n);
        float learningRate = 0.1f;
        try (CublasSgdBaseline baseline = new CublasSgdBaseline(0, n)) {
            baseline.load(parameters, gradient);
            baseline.step(learningRate);
            float[] got = baseline.parameters();
            for (int i = 0; i < n; i++) {
                float expected = Math.fma(-learningRate, gradient[i], parameters[i]);
                if (GpuTests.onEmulator()) {
                    assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(got[i]), "element " + i);
                } else {
                    assertEquals(parameters[i] - (double) learningRate * gradient[i], got[i], Math.ulp(expected), "element " + i);
                }
            }
        }
    }

    /** Shapes (batches, m, n, k) and transposes, in fp32 and bf16, against the model and exact products. */
    @Test
    void productsMatchTheDefinitionAndExactArithmetic() {
        List<Product> products = new ArrayList<>();
        int[][] shapes = {{2, 3, 5, 7}, {1, 16, 16, 16}, {3, 33, 17, 9}};
        for (Input input : Input.values()) {
            for (int[] s : shapes) {
                for (int t = 0; t < 4; t++) products.add(new Product(input, s[0], s[1], s[2], s[3], (t & 1) != 0, (t & 2) != 0));
            }
        }
        SplittableRandom random = new SplittableRandom(2);
        try (CudaEngine engine = new CudaEngine(0)) {
            for (Product product : products) {
                Operands operands = Operands.random(product, random);
                float alpha = 0.75f;
                float beta = product.batches() == 2 ? 0f : -0.5f; // beta 0: C is not read (it holds NaN below)
                float[] got = operands.multiplyOnDevice(engine, product, alpha, beta, beta == 0 ? Float.NaN : null);
                float[] model = operands.model(product, alpha, beta);
                for (int i = 0; i < got.length; i++) {
                    if (GpuTests.onEmulator()) {
                        assertEquals(Float.floatToRawIntBits(model[i]), Float.floatToRawIntBits(got[i]),
                                product + ": element " + i + " differs from the cuBLAS double's definition");
                    }
                    double[] exact = operands.exact(product, alpha, beta, i);
                    assertEquals(exact[0], got[i], accumulationBound(product.k()) * exact[1],
                            product + ": element " + i + " is not within rounding of the exact product");
                }
            }
        }
    }

    /** A product captured into a graph runs at each replay, on the operands' contents then, not at capture. */
    @Test
    void capturedProductRunsAtEachReplay() {
        Product product = new Product(Input.BF16, 2, 4, 3, 5, false, true);
        SplittableRandom random = new SplittableRandom(3);
        Operands first = Operands.random(product, random);
        Operands second = Operands.random(product, random);
        try (CudaEngine engine = new CudaEngine(0)) {
            CublasGemm cublas = engine.cublas(); // before the capture: creating the handle allocates
            long a = first.uploadA(product);
            long b = first.uploadB(product);
            long c = upload(first.c);
            try {
                CUgraphExec exec = CudaStepProgram.captureGraph(stream -> cublas.queue(stream, product, a, b, c, 1f, 1f));
                try {
                    engine.synchronize();
                    assertArrayBits(first.c, download(c, first.c.length), "capture runs nothing");
                    Driver.check(JCudaDriver.cuGraphLaunch(exec, engine.stream()), "cuGraphLaunch");
                    float[] once = first.model(product, 1f, 1f);
                    assertModel(once, download(c, once.length), "first replay");
                    // New A and B: the second replay reads them, and accumulates onto the first result.
                    copyIn(a, bf16Bits(second.a()), second.a().length * (long) Short.BYTES);
                    copyIn(b, bf16Bits(second.b()), second.b().length * (long) Short.BYTES);
                    Driver.check(JCudaDriver.cuGraphLaunch(exec, engine.stream()), "cuGraphLaunch");
                    float[] twice = new Operands(second.a, second.b, once).model(product, 1f, 1f);
                    assertModel(twice, download(c, twice.length), "second replay");
                } finally {
                    JCudaDriver.cuGraphExecDestroy(exec);
                }
            } finally {
                engine.free(a);
                engine.free(b);
                engine.free(c);
            }
        }
    }

    /** cublasCreate allocates device memory: during a capture it fails, and says so. */
    @Test
    void handleCreatedDuringACaptureFailsClearly() {
        assumeTrue(GpuTests.onEmulator(), "whether a real cuBLAS allocates at cublasCreate is its own affair");
        try (CudaEngine engine = new CudaEngine(0)) {
            CudaException e = assertThrows(CudaException.class, () -> CudaStepProgram.captureGraph(stream -> engine.cublas()));
            assertEquals("cublasCreate", e.call(), e.getMessage());
            assertEquals("CUBLAS_STATUS_ALLOC_FAILED", e.codeName(), e.getMessage());
            engine.cublas(); // and after the capture, the handle is created
        }
    }

    /**
     * cuBLAS cannot check device pointers at the call: a product on memory too small for it is
     * queued, then fails on the device as a kernel's illegal access does, and the next driver call
     * says so. (The emulator's report on stderr names the call and cuBLAS's operand: CublasGemm
     * passes the row-major B as cuBLAS's A.)
     */
    @Test
    void productOnTooSmallMemoryFailsAsAnIllegalAddress() {
        assumeTrue(GpuTests.onEmulator(), "a real GPU may not fault on an access just past an allocation");
        Product product = new Product(Input.FP32, 1, 8, 8, 8, false, false);
        try (CudaEngine engine = new CudaEngine(0)) {
            long a = Driver.allocate(product.aElements() * Float.BYTES);
            long b = Driver.allocate(product.bElements() * Float.BYTES - Float.BYTES); // one element short
            long c = Driver.allocate(product.cElements() * Float.BYTES);
            engine.cublas().queue(engine.stream(), product, a, b, c, 1f, 0f);
            CudaException e = assertThrows(CudaException.class, engine::synchronize);
            assertEquals("CUDA_ERROR_ILLEGAL_ADDRESS", e.codeName(), e.getMessage());
        }
        // The last release reset the context: a new engine works again.
        try (CudaEngine engine = new CudaEngine(0)) {
            engine.synchronize();
        }
    }

    /** A, B (fp32 values, already representable in the product's input type) and C, all batches, row-major. */
    private record Operands(float[] a, float[] b, float[] c) {
        static Operands random(Product p, SplittableRandom random) {
            float[] a = randomValues(random, Math.toIntExact(p.batches() * p.aElements()));
            float[] b = randomValues(random, Math.toIntExact(p.batches() * p.bElements()));
            if (p.input() == Input.BF16) {
                roundToBf16(a);
                roundToBf16(b);
            }
            return new Operands(a, b, randomValues(random, Math.toIntExact(p.batches() * p.cElements())));
        }

        /** op(A)[i][l] of one batch. */
        float opA(Product p, int batch, int i, int l) {
            return a[Math.toIntExact(batch * p.aElements() + (p.transposeA() ? (long) l * p.m() + i : (long) i * p.k() + l))];
        }

        /** op(B)[l][j] of one batch. */
        float opB(Product p, int batch, int l, int j) {
            return b[Math.toIntExact(batch * p.bElements() + (p.transposeB() ? (long) j * p.k() + l : (long) l * p.n() + j))];
        }

        /** The cuBLAS double's definition: per element, fma over k increasing from +0, then alpha*acc + beta*C. */
        float[] model(Product p, float alpha, float beta) {
            float[] out = new float[c.length];
            for (int batch = 0; batch < p.batches(); batch++) {
                for (int i = 0; i < p.m(); i++) {
                    for (int j = 0; j < p.n(); j++) {
                        float acc = 0f;
                        for (int l = 0; l < p.k(); l++) acc = Math.fma(opA(p, batch, i, l), opB(p, batch, l, j), acc);
                        int index = Math.toIntExact(batch * p.cElements() + (long) i * p.n() + j);
                        out[index] = beta == 0f ? alpha * acc : alpha * acc + beta * c[index];
                    }
                }
            }
            return out;
        }

        /**
         * The exact value of element {@code index} (float64 is exact for these sums of a few
         * products of short significands) and the sum of the magnitudes it is made of,
         * |alpha| sum |op(A) op(B)| + |beta C|, which bounds the error of an fp32 evaluation with
         * {@link #accumulationBound}.
         */
        double[] exact(Product p, float alpha, float beta, int index) {
            int batch = Math.toIntExact(index / p.cElements());
            int i = Math.toIntExact(index % p.cElements() / p.n());
            int j = Math.toIntExact(index % p.n());
            double sum = 0;
            double magnitude = 0;
            for (int l = 0; l < p.k(); l++) {
                double product = (double) opA(p, batch, i, l) * opB(p, batch, l, j);
                sum += product;
                magnitude += Math.abs(product);
            }
            double c0 = beta == 0f ? 0 : c[index];
            return new double[] {alpha * sum + beta * c0, Math.abs(alpha) * magnitude + Math.abs(beta * c0)};
        }

        long uploadA(Product p) {
            return p.input() == Input.FP32 ? upload(a) : uploadShorts(bf16Bits(a));
        }

        long uploadB(Product p) {
            return p.input() == Input.FP32 ? upload(b) : uploadShorts(bf16Bits(b));
        }

        /** Runs the product on the device; C starts as this record's C, or as {@code cFill} everywhere. */
        float[] multiplyOnDevice(CudaEngine engine, Product p, float alpha, float beta, Float cFill) {
            long da = uploadA(p);
            long db = uploadB(p);
            float[] c0 = c.clone();
            if (cFill != null) Arrays.fill(c0, cFill);
            long dc = upload(c0);
            try {
                engine.cublas().queue(engine.stream(), p, da, db, dc, alpha, beta);
                return download(dc, c.length);
            } finally {
                engine.free(da);
                engine.free(db);
                engine.free(dc);
            }
        }
    }

    /** bf16 inputs against exact products of the fp32 values they were rounded from: within bf16 rounding. */
    @Test
    void bf16ProductsAreWithinBf16RoundingOfTheFp32Operands() {
        Product product = new Product(Input.BF16, 2, 33, 17, 9, false, true);
        SplittableRandom random = new SplittableRandom(4);
        float[] a = randomValues(random, Math.toIntExact(product.batches() * product.aElements()));
        float[] b = randomValues(random, Math.toIntExact(product.batches() * product.bElements()));
        float[] c = new float[Math.toIntExact(product.batches() * product.cElements())];
        Operands unrounded = new Operands(a, b, c);
        Operands rounded = new Operands(roundToBf16(a.clone()), roundToBf16(b.clone()), c);
        try (CudaEngine engine = new CudaEngine(0)) {
            float[] got = rounded.multiplyOnDevice(engine, product, 1f, 0f, Float.NaN);
            // Each input is within a relative 2^-8 of its fp32 value, so each product within (1+2^-8)^2 - 1.
            double inputError = (1 + BF16_UNIT_ROUNDOFF) * (1 + BF16_UNIT_ROUNDOFF) - 1;
            // The rounded operands' magnitudes are within (1 + inputError) of the unrounded ones.
            double relativeBound = accumulationBound(product.k()) * (1 + inputError) + inputError;
            for (int i = 0; i < got.length; i++) {
                double[] exact = unrounded.exact(product, 1f, 0f, i);
                assertEquals(exact[0], got[i], relativeBound * exact[1], product + ": element " + i);
            }
        }
    }

    private static float[] randomValues(SplittableRandom random, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float) (random.nextDouble() * 2 - 1);
        return values;
    }

    private static float[] roundToBf16(float[] values) {
        for (int i = 0; i < values.length; i++) values[i] = Conversions.widen(Precision.BF16, Conversions.narrow(Precision.BF16, values[i]));
        return values;
    }

    private static short[] bf16Bits(float[] values) {
        short[] bits = new short[values.length];
        for (int i = 0; i < values.length; i++) bits[i] = Conversions.narrow(Precision.BF16, values[i]);
        return bits;
    }

    private static long upload(float[] values) {
        long address = Driver.allocate((long) values.length * Float.BYTES);
        copyIn(address, values, (long) values.length * Float.BYTES);
        return address;
    }

    private static long uploadShorts(short[] values) {
        long address = Driver.allocate((long) values.length * Short.BYTES);
        copyIn(address, values, (long) values.length * Short.BYTES);
        return address;
    }

    private static void copyIn(long address, Object values, long bytes) {
        Pointer source = values instanceof float[] f ? Pointer.to(f) : Pointer.to((short[]) values);
        Driver.check(JCudaDriver.cuMemcpyHtoD(Driver.pointerAt(address), source, bytes), "cuMemcpyHtoD");
    }

    /** Copies back on the legacy default stream, after the engine's work (the engine uses that stream here). */
    private static float[] download(long address, int n) {
        float[] values = new float[n];
        Driver.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(values), Driver.pointerAt(address), (long) n * Float.BYTES), "cuMemcpyDtoH");
        return values;
    }

    private static void assertArrayBits(float[] expected, float[] got, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(got[i]), what + ": element " + i);
        }
    }

    /** Bit for bit on the emulator (its definition), within fp32 rounding elsewhere. */
    private static void assertModel(float[] model, float[] got, String what) {
        if (GpuTests.onEmulator()) {
            assertArrayBits(model, got, what);
            return;
        }
        for (int i = 0; i < model.length; i++) assertEquals(model[i], got[i], 1e-5 * (1 + Math.abs(model[i])), what + ": element " + i);
    }
}
