package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.KernelFlags;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.SegmentTable;
import io.fusedopt.internal.Algorithms;
import io.fusedopt.internal.FactoredKernel;
import io.fusedopt.internal.LayerwiseKernel;
import io.fusedopt.internal.MatrixKernel;
import io.fusedopt.internal.UpdateKernel;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The Java side and kernels/*.cu agree on everything that crosses the boundary: flag bits, scalar
 * struct layouts, entry points, argument counts; and the kernel binaries are on the classpath.
 * Checked without a GPU, by reading the sources.
 */
class KernelContractTest {
    private static final Path KERNELS = Path.of("kernels");

    @Test
    void flagBitsMatch() throws Exception {
        String header = Files.readString(KERNELS.resolve("fusedopt_common.cuh"));
        String[][] pairs = {{"FO_MAXIMIZE", "MAXIMIZE"}, {"FO_L2_DECAY", "L2_DECAY"},
            {"FO_DECOUPLED_DECAY", "DECOUPLED_DECAY"}, {"FO_NESTEROV", "NESTEROV"}, {"FO_FIRST_STEP", "FIRST_STEP"},
            {"FO_AMSGRAD", "AMSGRAD"}, {"FO_CENTERED", "CENTERED"}, {"FO_MOMENTUM", "MOMENTUM"},
            {"FO_UNSCALE", "UNSCALE"}, {"FO_CLIP", "CLIP"}, {"FO_STEP_SIZE_FORM", "STEP_SIZE_FORM"},
            {"FO_ALGORITHM_0", "ALGORITHM_0"}};
        for (String[] pair : pairs) {
            Matcher m = Pattern.compile("#define " + pair[0] + "\\s+\\(1 << (\\d+)\\)").matcher(header);
            assertTrue(m.find(), pair[0] + " missing from the header");
            Field f = KernelFlags.class.getField(pair[1]);
            assertEquals(1 << Integer.parseInt(m.group(1)), f.getInt(null), pair[0]);
        }
    }

    @Test
    void segmentTableConstantsMatch() throws IOException {
        String header = Files.readString(KERNELS.resolve("fusedopt_common.cuh"));
        Matcher chunk = Pattern.compile("#define FO_CHUNK_ELEMENTS \\(1LL << (\\d+)\\)").matcher(header);
        assertTrue(chunk.find(), "FO_CHUNK_ELEMENTS");
        assertEquals(SegmentTable.CHUNK_ELEMENTS, 1L << Integer.parseInt(chunk.group(1)));
        assertEquals(GradientStatistics.LANES, define(header, "FO_LANES"));
        assertEquals(StepScalars.SCALAR_STRIDE, define(header, "FO_SCALAR_STRIDE"));
        assertEquals(StepScalars.HYPER_STRIDE, define(header, "FO_HYPER_STRIDE"));
        for (Precision p : Precision.values()) {
            assertEquals(p.code(), define(header, "FO_" + p.name().replace("FP32", "F32").replace("FP16", "F16")), p.name());
        }
        String scalars = Files.readString(KERNELS.resolve("fusedopt_scalars.cuh"));
        assertEquals(StepScalars.H_LR, define(scalars, "FO_H_LR"));
        assertEquals(StepScalars.H_WEIGHT_DECAY, define(scalars, "FO_H_WEIGHT_DECAY"));
        assertEquals(StepScalars.H_FIRST_OWN, define(scalars, "FO_H_OWN"));
    }

    @Test
    void controlBlockOffsetsMatch() throws Exception {
        String header = Files.readString(KERNELS.resolve("fusedopt_common.cuh"));
        Matcher struct = Pattern.compile("struct FoControl \\{[^\\n]*\\n(.*?)\\n\\};", Pattern.DOTALL).matcher(header);
        assertTrue(struct.find(), "FoControl");
        Matcher field = Pattern.compile("\\s+(?:long long|double|float|int) (\\w+)(?:\\[\\d+\\])?;\\s+//\\s*(\\d+):").matcher(struct.group(1));
        int fields = 0;
        while (field.find()) {
            if (field.group(1).equals("reserved")) continue;
            Field f = StepControl.class.getField("OFFSET_" + field.group(1).toUpperCase());
            assertEquals(Integer.parseInt(field.group(2)), f.getInt(null), field.group(1));
            fields++;
        }
        assertEquals(21, fields, "FoControl fields with a Java offset");
    }

    private static int define(String source, String name) {
        Matcher m = Pattern.compile("#define " + name + "\\s+(\\d+)").matcher(source);
        assertTrue(m.find(), name + " missing");
        return Integer.parseInt(m.group(1));
    }

    @Test
    void launchStructsAndSignaturesMatch() throws IOException {
        String header = Files.readString(KERNELS.resolve("fusedopt_common.cuh"));
        assertTrue(header.replace("\\", " ").replaceAll("\\s+", " ").contains("extern \"C\" __global__ void name(const FoTensor* tensors, const FoChunk* chunks,"
                + " int chunk_count, const FoControl* control, const float* hyper, const FoEntryStep* steps, const int* flags)"),
                "update kernel signature");
        // The 8-bit entry point: the mixed entry's arguments and the two code maps (CodeMap.SIGNED's values, then UNSIGNED's).
        assertTrue(header.replace("\\", " ").replaceAll("\\s+", " ").contains("extern \"C\" __global__ void name##_q8(const FoTensor* tensors,"
                + " const FoChunk* chunks, int chunk_count, const FoControl* control, const float* hyper, const FoEntryStep* steps,"
                + " const int* flags, const float* code_maps)"), "8-bit update kernel signature");
        // The entry point for every operand 16-bit: the update kernel's arguments (CudaStepProgram passes the same).
        assertTrue(header.replace("\\", " ").replaceAll("\\s+", " ").contains("extern \"C\" __global__ void name##_narrow(const FoTensor* tensors,"
                + " const FoChunk* chunks, int chunk_count, const FoControl* control, const float* hyper, const FoEntryStep* steps,"
                + " const int* flags)"), "16-bit update kernel signature");
        assertTrue(header.replace("\\", " ").replaceAll("\\s+", " ").contains("extern \"C\" __global__ void name##_norms(const FoTensor* tensors,"
                + " const FoChunk* chunks, int chunk_count, const FoControl* control, const float* hyper, const FoEntryStep* steps,"
                + " const int* flags, double* chunk_sums)"), "layer-wise norm pass signature");
        // The matrix kernels' entry points (MatrixKernel's names), with the arguments CudaStepProgram passes.
        String matrixHeader = Files.readString(KERNELS.resolve("fusedopt_matrix.cuh")).replace("\\", " ").replaceAll("\\s+", " ");
        String chunkArguments = "(const FoTensor* tensors, const FoChunk* chunks, int chunk_count, const FoControl* control,"
                + " const float* hyper, const FoEntryStep* steps, const int* flags, const FoMatrix* matrices";
        for (String signature : List.of("name##_input" + chunkArguments + ", double* chunk_sums)",
                "name##_normalize" + chunkArguments + ", const double* tensor_sums)",
                "name##_product(const FoTensor* tensors, const FoMatrix* matrices, const int* members, const FoControl* control,"
                        + " const float* hyper, const FoEntryStep* steps, const int* flags, int product, int step)",
                "name##_fast(const FoTensor* tensors, const FoMatrix* matrices, const int* members, const FoControl* control,"
                        + " const float* hyper, const FoEntryStep* steps, const int* flags, int pass, int step)",
                "name" + chunkArguments + ")", "name##_mixed" + chunkArguments + ")")) {
            assertTrue(matrixHeader.contains("extern \"C\" __global__ void " + signature), "matrix kernel signature " + signature);
        }
        assertTrue(header.replace("\\", " ").replaceAll("\\s+", " ").contains("extern \"C\" __global__ void name(const FoTensor* tensors,"
                + " const FoFactoredShape* shapes, int tensor_count, const FoControl* control, const float* hyper,"
                + " const FoEntryStep* steps, const int* flags, float* scratch)"), "factored kernel signature");
        assertEquals(24, structBytes(header, "FoFactoredShape"), "FoFactoredShape: DeviceSegmentTable.FACTORED_SHAPE_BYTES");
        for (UpdateKernel kernel : Algorithms.kernels()) {
            String source = Files.readString(KERNELS.resolve(kernel.family() + ".cu"));
            // FO_UPDATE_KERNELS(entry, SLOTS, Op, Scalars); a layer-wise kernel FO_LAYERWISE_KERNELS(entry, SLOTS, NormOp, Op,
            // Scalars); a matrix kernel FO_MATRIX_KERNELS(entry, SLOTS, InputOp, Op, Scalars); a factored one
            // FO_FACTORED_KERNELS(entry, SLOTS, Step, Scalars).
            Matcher use = Pattern.compile(kernel instanceof LayerwiseKernel
                    ? "FO_LAYERWISE_KERNELS\\(" + kernel.entryPoint() + ", (\\d+), \\w+, (\\w+), (\\w+)\\)"
                    : kernel instanceof MatrixKernel
                    ? "FO_MATRIX_KERNELS\\(" + kernel.entryPoint() + ", (\\d+), \\w+, (\\w+), (\\w+)\\)"
                    : kernel instanceof FactoredKernel
                    ? "FO_FACTORED_KERNELS\\(" + kernel.entryPoint() + ", (\\d+), (\\w+), (\\w+)\\)"
                    : "FO_UPDATE_KERNELS\\(" + kernel.entryPoint() + ", (\\d+), (\\w+), (\\w+)\\)").matcher(source);
            assertTrue(use.find(), kernel.entryPoint() + " not found in " + kernel.family() + ".cu");
            assertEquals(kernel.stateSlots(), Integer.parseInt(use.group(1)), kernel + " state slots");
            // FO_UPDATE_KERNELS declares the _narrow entry point; the other launch shapes have none.
            boolean plainElementwise = !(kernel instanceof LayerwiseKernel || kernel instanceof MatrixKernel || kernel instanceof FactoredKernel);
            assertEquals(plainElementwise, kernel.hasNarrowEntryPoint(),
                    kernel + ": a 16-bit entry point exactly when FO_UPDATE_KERNELS declares it");
            // The 8-bit entry point, with the same operation, exactly for the kernels of algorithms with 8-bit states.
            boolean quantized = source.contains("FO_QUANTIZED_UPDATE_KERNEL(" + kernel.entryPoint() + ", " + use.group(1) + ", "
                    + use.group(2) + ", " + use.group(3) + ")");
            assertEquals(kernel.hasQuantizedEntryPoint(), quantized, kernel + ": an 8-bit entry point exactly when its algorithm has 8-bit states");
            // The struct's data members come first, floats only, then its static of(...): the
            // finalize kernel no longer writes it, but the Java scalar count must match its layout.
            Matcher struct = Pattern.compile("struct " + use.group(3) + " \\{\\n(.*?)\\n\\n\\s*// h: .*?__device__ static "
                    + use.group(3) + " of\\(const float\\* h, float lr_f, int flags, long long step\\)", Pattern.DOTALL).matcher(source);
            assertTrue(struct.find(), use.group(3) + " with its static of(h, lr_f, flags, step) not found in " + kernel.family() + ".cu");
            long floats = struct.group(1).lines().map(String::trim).filter(l -> l.startsWith("float ")).count();
            long others = struct.group(1).lines().map(String::trim)
                    .filter(l -> !l.isEmpty() && !l.startsWith("float ") && !l.startsWith("//")).count();
            assertEquals(kernel.scalarCount(), floats, use.group(3) + " field count vs the Java scalar count");
            assertEquals(0, others, use.group(3) + " must hold only floats");
            assertTrue(kernel.scalarCount() <= StepScalars.SCALAR_STRIDE);
        }
    }

    /** The bytes of a struct of long long and int fields, each commented with nothing else on its line. */
    private static int structBytes(String header, String name) {
        Matcher struct = Pattern.compile("struct " + name + " \\{[^\\n]*\\n(.*?)\\n\\};", Pattern.DOTALL).matcher(header);
        assertTrue(struct.find(), name);
        int bytes = 0;
        for (String line : struct.group(1).lines().map(String::trim).toList()) {
            if (line.startsWith("long long ")) bytes += 8;
            else if (line.startsWith("int ")) bytes += 4;
        }
        return bytes;
    }

    @Test
    void kernelBinariesAndManifestAreOnTheClasspath() throws IOException {
        Properties manifest = new Properties();
        try (InputStream in = getClass().getResourceAsStream("/io/fusedopt/kernels/kernels.properties")) {
            assertNotNull(in, "kernels.properties missing: the build did not run kernels/build.sh");
            manifest.load(in);
        }
        assertTrue(Integer.parseInt(manifest.getProperty("required.driver.cuda.version")) >= 11000);
        for (UpdateKernel kernel : Algorithms.kernels()) {
            try (InputStream in = getClass().getResourceAsStream("/io/fusedopt/kernels/" + kernel.family() + ".fatbin")) {
                assertNotNull(in, kernel.family() + ".fatbin missing");
                assertTrue(in.readAllBytes().length > 1000);
            }
        }
    }

    /** A binary arithmetic operator between two operands (unary minus is exact and allowed). */
    private static final Pattern BARE_OPERATOR = Pattern.compile("[A-Za-z0-9_)\\]]\\s*[-*/+]\\s*[A-Za-z0-9_(]");

    @Test
    void kernelsUseOnlyExplicitlyRoundedArithmetic() throws IOException {
        // Every float operation in a kernel loop goes through an _rn intrinsic: a bare operator between
        // floats could be contracted or approximated differently from the Java reference.
        assertTrue(BARE_OPERATOR.matcher("float x = a * b;").find(), "the pattern must catch a bare multiply");
        assertTrue(BARE_OPERATOR.matcher("p = p - a;").find(), "the pattern must catch a bare subtraction");
        for (String family : Algorithms.kernels().stream().map(UpdateKernel::family).distinct().toList()) {
            String source = Files.readString(KERNELS.resolve(family + ".cu"));
            Matcher op = Pattern.compile("void operator\\(\\)\\(float& p, float grad, float\\* st\\) const \\{(.*?)\\n  \\}",
                    Pattern.DOTALL).matcher(source);
            int ops = 0;
            // A factored family's per-element arithmetic: the functions between its float arithmetic markers.
            Matcher arithmetic = Pattern.compile("// ---- float arithmetic begin[^\\n]*\\n(.*?)// ---- float arithmetic end", Pattern.DOTALL)
                    .matcher(source);
            if (arithmetic.find()) {
                ops++;
                String body = arithmetic.group(1).replaceAll("//[^\\n]*", "")
                        .replaceAll("__device__ __forceinline__ \\w+ \\w+\\([^)]*\\)", ""); // signatures: declarations, no arithmetic
                Matcher bare = BARE_OPERATOR.matcher(body);
                if (bare.find()) {
                    throw new AssertionError(family + " has a bare arithmetic operator near: "
                            + body.substring(Math.max(0, bare.start() - 20), Math.min(body.length(), bare.end() + 20)));
                }
            }
            while (op.find()) {
                ops++;
                String body = op.group(1)
                        .replaceAll("//[^\\n]*", "")
                        .replaceAll("\\[\\d\\]", "")                 // state slots are constant indices
                        .replaceAll("flags & FO_[A-Z0-9_]+", "");   // flag tests are integer arithmetic
                Matcher bare = BARE_OPERATOR.matcher(body);
                if (bare.find()) {
                    throw new AssertionError(family + " has a bare arithmetic operator near: "
                            + body.substring(Math.max(0, bare.start() - 20), Math.min(body.length(), bare.end() + 20)));
                }
            }
            assertTrue(ops > 0, "no update operator found in " + family + ".cu");
        }
    }
}
