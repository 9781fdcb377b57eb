package io.fusedopt;

import static io.fusedopt.ValidationTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.IntFunction;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Calls that must be refused with a message naming the problem, leaving the optimizer as it was:
 * memory registered twice through different wrappers, a step over no tensor, a save into a missing
 * folder, running out of memory half-way through a registration.
 */
class RefusedCallsTest {

    static Stream<Backend> hostBackends() {
        return Stream.of(Backend.CPU, Backend.CPU_FAST);
    }

    // ---- 1. memory registered twice ----

    /** Two wrappers of one memory, made by {@code wrap} from element ranges of one array or direct buffer. */
    interface Wrapper {
        TensorBuffer wrap(DeviceOptimizer opt, int from, int to);
    }

    static Stream<Wrapper> wrappers() {
        float[] array = new float[16];
        FloatBuffer direct = ByteBuffer.allocateDirect(16 * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
        return Stream.of(
                named("heap slices", (opt, from, to) -> opt.wrapHost(FloatBuffer.wrap(array, from, to - from).slice())),
                named("heap positions", (opt, from, to) -> opt.wrapHost(FloatBuffer.wrap(array).position(from).limit(to))),
                named("direct slices", (opt, from, to) -> opt.wrapHost(direct.duplicate().position(from).limit(to).slice())));
    }

    private static Wrapper named(String name, Wrapper w) {
        return new Wrapper() {
            @Override
            public TensorBuffer wrap(DeviceOptimizer opt, int from, int to) {
                return w.wrap(opt, from, to);
            }

            @Override
            public String toString() {
                return name;
            }
        };
    }

    @ParameterizedTest
    @MethodSource("hostBackends")
    void theSameArrayWrappedTwiceCannotBeRegisteredTwice(Backend backend) {
        float[] weights = {1f, 2f, 3f, 4f};
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().optLearningRate(1).build())) {
            ParamGroup group = opt.addGroup();
            TensorBuffer w = opt.wrapHost(weights);
            TensorBuffer again = opt.wrapHost(weights); // wrapping twice is harmless: reading is
            assertArrayEquals(weights, again.toArray());
            TensorBuffer dw = opt.allocate(4);
            dw.copyFrom(new float[] {1f, 1f, 1f, 1f});
            group.add("w", w, dw);
            long owned = opt.ownedBytes();

            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> group.add("v", again, opt.allocate(4)));
            assertTrue(e.getMessage().contains("param 'v'") && e.getMessage().contains("param 'w'"), e.getMessage());
            assertMessage(IllegalArgumentException.class, "grad of 'u'", () -> group.add("u", opt.allocate(4), again));
            assertEquals(1, group.parameters().size(), "nothing registered");
            assertEquals(owned + 2 * 4 * Float.BYTES, opt.ownedBytes(), "only the two buffers the test allocated");

            group.add("v", opt.allocate(4), opt.allocate(4)); // the refused names are still free
            opt.step(); // the array is updated once, not twice
            assertArrayEquals(new float[] {0f, 1f, 2f, 3f}, weights);
        }
    }

    @ParameterizedTest
    @MethodSource("hostBackends")
    void aParamOverlappingItsOwnGradIsRefused(Backend backend) {
        float[] memory = new float[8];
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Adam.builder().build())) {
            ParamGroup group = opt.addGroup();
            long owned = opt.ownedBytes();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> group.add("w", opt.wrapHost(memory), opt.wrapHost(memory)));
            assertTrue(e.getMessage().contains("grad of 'w'") && e.getMessage().contains("param 'w'"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> group.add("w",
                    opt.wrapHost(FloatBuffer.wrap(memory, 0, 4).slice()), opt.wrapHost(FloatBuffer.wrap(memory, 3, 4).slice())));
            assertEquals(List.of(), group.parameters());
            assertEquals(owned, opt.ownedBytes(), "no state allocated");
            // Adjacent halves share no byte: they are a param and its grad.
            group.add("w", opt.wrapHost(FloatBuffer.wrap(memory, 0, 4).slice()), opt.wrapHost(FloatBuffer.wrap(memory, 4, 4).slice()));
        }
    }

    @ParameterizedTest
    @MethodSource("hostBackends")
    void overlappingSlicesOfOneBufferAreRefused(Backend backend) {
        for (Wrapper slices : (Iterable<Wrapper>) wrappers()::iterator) {
            try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Momentum.builder().setMomentum(0.9).build())) {
                ParamGroup group = opt.addGroup();
                group.add("a", slices.wrap(opt, 0, 4), slices.wrap(opt, 8, 12));
                long owned = opt.ownedBytes();
                // [3, 7) overlaps a's param [0, 4) in its first element; [11, 15) overlaps a's grad.
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> group.add("b", slices.wrap(opt, 3, 7), slices.wrap(opt, 12, 16)), slices.toString());
                assertTrue(e.getMessage().contains("param 'b'") && e.getMessage().contains("param 'a'"), slices + ": " + e.getMessage());
                e = assertThrows(IllegalArgumentException.class,
                        () -> group.add("b", slices.wrap(opt, 4, 8), slices.wrap(opt, 11, 15)), slices.toString());
                assertTrue(e.getMessage().contains("grad of 'b'") && e.getMessage().contains("grad of 'a'"), slices + ": " + e.getMessage());
                assertEquals(1, group.parameters().size(), slices.toString());
                assertEquals(owned, opt.ownedBytes(), slices + ": no state left allocated");
                // What is left, [4, 8) and [12, 16), shares nothing.
                group.add("b", slices.wrap(opt, 4, 8), slices.wrap(opt, 12, 16));
                opt.step();
            }
        }
    }

    @Test
    @Tag("gpu")
    void overlappingDeviceRangesAreRefused() {
        GpuTests.assumeGpu();
        try (CallerContext context = new CallerContext(0); CallerContext.Allocation memory = context.allocate(64 * Float.BYTES);
             DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Adam.builder().build())) {
            long base = memory.address();
            IntFunction<Long> at = element -> base + (long) element * Float.BYTES;
            ParamGroup group = opt.addGroup();
            group.add("a", opt.wrapDevicePointer(at.apply(0), 16), opt.wrapDevicePointer(at.apply(32), 16));
            long owned = opt.ownedBytes();
            long free = context.freeBytes();

            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> group.add("b", opt.wrapDevicePointer(at.apply(15), 16), opt.wrapDevicePointer(at.apply(48), 16)));
            assertTrue(e.getMessage().contains("param 'b'") && e.getMessage().contains("param 'a'"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> group.add("b", opt.wrapDevicePointer(at.apply(16), 16), opt.wrapDevicePointer(at.apply(16), 16)));
            assertTrue(e.getMessage().contains("grad of 'b'") && e.getMessage().contains("param 'b'"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> group.add("b", opt.wrapDevicePointer(at.apply(16), 16), opt.wrapDevicePointer(at.apply(40), 16)));
            assertTrue(e.getMessage().contains("grad of 'b'") && e.getMessage().contains("grad of 'a'"), e.getMessage());
            assertEquals(1, group.parameters().size());
            assertEquals(owned, opt.ownedBytes());
            assertEquals(free, context.freeBytes(), "no device memory allocated by the refused registrations");

            group.add("b", opt.wrapDevicePointer(at.apply(16), 16), opt.wrapDevicePointer(at.apply(48), 16));
            opt.step();
            opt.synchronize();
        }
    }

    // ---- 2. a step over nothing ----

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aStepOverNoTensorIsRefusedAndNotCounted(Backend backend) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Adam.builder().build())) {
            assertMessage(IllegalStateException.class, "no tensor is registered", opt::step);
            opt.addGroup();
            assertMessage(IllegalStateException.class, "no tensor is registered", opt::step);
            assertMessage(IllegalStateException.class, "no tensor is registered", opt::captureStep);
            assertEquals(0, opt.stepCount());
            assertEquals(0, opt.lastStep().step());
            // Registration is still open, and the optimizer usable: the refusal was not a failed step.
            ParamGroup group = opt.addGroup();
            group.add("w", opt.allocate(2), opt.allocate(2));
            opt.step();
            assertEquals(1, opt.stepCount());
        }
    }

    @Test
    @Tag("gpu")
    void aStepOverNoTensorIsRefusedOnCuda() {
        GpuTests.assumeGpu();
        try (DeviceOptimizer opt = DeviceOptimizer.builder(Adam.builder().build()).optBackend(Backend.CUDA)
                .optNonFinitePolicy(NonFinitePolicy.SKIP_STEP).build()) {
            opt.addGroup();
            assertMessage(IllegalStateException.class, "no tensor is registered", opt::step);
            assertMessage(IllegalStateException.class, "no tensor is registered", opt::captureStep);
            assertEquals(0, opt.stepCount());
            opt.addGroup().add("w", opt.allocate(2), opt.allocate(2));
            opt.captureStep().replay();
            assertEquals(1, opt.stepCount());
        }
    }

    // ---- 3. a save into a missing folder ----

    @Test
    void aSaveIntoAMissingFolderIsACheckpointExceptionNamingIt(@TempDir Path dir) throws Exception {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            opt.addGroup().add("w", opt.allocate(2), opt.allocate(2));
            opt.step();
            Path missing = dir.resolve("no-such-folder");
            Path file = missing.resolve("optimizer.safetensors");
            CheckpointException e = assertThrows(CheckpointException.class, () -> opt.save(file));
            assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
            assertFalse(Files.exists(missing), "save creates no folder");
            try (Stream<Path> left = Files.list(dir)) {
                assertEquals(List.of(), left.toList(), "nothing written");
            }
            Path notAFolder = Files.createFile(dir.resolve("plain-file"));
            assertThrows(CheckpointException.class, () -> opt.save(notAFolder.resolve("optimizer.safetensors")));
            opt.save(dir.resolve("optimizer.safetensors")); // still usable
            assertEquals(1, opt.stepCount());
        }
    }

    /** A save whose target is a folder is refused before anything is prepared or written. */
    @Test
    void aSaveOntoAFolderIsRefusedBeforeWritingAnything(@TempDir Path dir) throws Exception {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            opt.addGroup().add("w", opt.allocate(2), opt.allocate(2));
            opt.step();
            Path folder = Files.createDirectory(dir.resolve("checkpoints"));
            int[] opened = {0};
            CheckpointException e = assertThrows(CheckpointException.class, () -> opt.save(folder, file -> {
                opened[0]++;
                return Checkpoint.FILES.open(file);
            }));
            assertTrue(e.getMessage().contains(folder.toString()) && e.getMessage().contains("is a folder"), e.getMessage());
            assertEquals(0, opened[0], "no temporary file was opened");
            try (Stream<Path> left = Files.list(dir)) {
                assertEquals(List.of(folder), left.toList(), "nothing written beside the folder");
            }
            try (Stream<Path> inside = Files.list(folder)) {
                assertEquals(List.of(), inside.toList(), "nothing written into it");
            }
            opt.save(folder.resolve("optimizer.safetensors")); // still usable
        }
    }

    // ---- 4. out of memory half-way through add() ----

    @ParameterizedTest
    @MethodSource("hostBackends")
    void runningOutOfMemoryInAddFreesWhatItAllocated(Backend backend) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Adam.builder().optAmsgrad(true).build())) {
            ParamGroup group = opt.addGroup();
            TensorBuffer w = opt.allocate(1000), dw = opt.allocate(1000);
            long owned = opt.ownedBytes();
            int[] calls = {0};
            // The second state does not fit, as when the direct-memory limit is reached (an Error, not an exception).
            opt.registrationAllocator((length, precision, initialValue) -> {
                if (++calls[0] == 2) throw new OutOfMemoryError("test: cannot reserve direct memory");
                return opt.engine().allocate(length, precision, initialValue);
            });
            assertThrows(OutOfMemoryError.class, () -> group.add("w", w, dw));
            assertEquals(2, calls[0]);
            assertEquals(owned, opt.ownedBytes(), "the first state must be freed at once, not at close()");
            assertEquals(List.of(), group.parameters());

            opt.registrationAllocator(null);
            Parameter p = group.add("w", w, dw); // name and buffers still free
            assertEquals(owned + 3 * 1000L * Float.BYTES, opt.ownedBytes());
            opt.step();
            assertEquals(3, p.stateKinds().size());
        }
    }

    @Test
    @Tag("gpu")
    void runningOutOfDeviceMemoryInAddFreesWhatItAllocated() {
        GpuTests.assumeGpu();
        int n = 1 << 20; // 4 MiB per state
        long stateBytes = (long) n * Float.BYTES;
        try (CallerContext context = new CallerContext(0);
             DeviceOptimizer opt = DeviceOptimizer.create(Backend.CUDA, Adam.builder().build())) {
            ParamGroup group = opt.addGroup();
            TensorBuffer w = opt.allocate(n), dw = opt.allocate(n);
            opt.synchronize();
            // Fill the device but for room for one state and a half: the second state does not fit.
            long filler = context.freeBytes() - stateBytes - stateBytes / 2;
            if (!GpuTests.onEmulator()) {
                org.junit.jupiter.api.Assumptions.assumeTrue(filler < (8L << 30),
                        "fills the device: run on the emulator's 4 GiB device, or a small GPU");
            }
            try (CallerContext.Allocation most = context.allocate(filler)) {
                long owned = opt.ownedBytes();
                long free = context.freeBytes();
                CudaException e = assertThrows(CudaException.class, () -> group.add("w", w, dw));
                assertEquals("CUDA_ERROR_OUT_OF_MEMORY", e.codeName(), e.getMessage());
                assertEquals(owned, opt.ownedBytes(), "the first state must be freed at once, not at close()");
                assertEquals(free, context.freeBytes(), "device memory as before the call");
                assertEquals(List.of(), group.parameters());
            }
            group.add("w", w, dw); // fits again
            opt.step();
            opt.synchronize();
        }
    }

    // ---- 5. tensors larger than the heap or than a backend can index ----

    /**
     * A tensor larger than the heap's limit is refused at once, naming the sizes and -Xmx, with
     * nothing allocated (before, CPU_FAST filled the heap block by block for 15 s first).
     */
    @ParameterizedTest
    @MethodSource("hostBackends")
    void aTensorLargerThanTheHeapIsRefusedAtOnce(Backend backend) {
        long overHeap = Runtime.getRuntime().maxMemory() / Float.BYTES + 1;
        if (backend == Backend.CPU) {
            org.junit.jupiter.api.Assumptions.assumeTrue(overHeap <= Integer.MAX_VALUE - 8, "the heap holds the longest CPU array");
        }
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().build())) {
            long started = System.nanoTime();
            OutOfMemoryError e = assertThrows(OutOfMemoryError.class, () -> opt.allocate(overHeap));
            assertTrue(e.getMessage().contains(overHeap * Float.BYTES + " bytes, more than the heap's limit")
                    && e.getMessage().contains("-Xmx"), e.getMessage());
            assertTrue(System.nanoTime() - started < 2_000_000_000L, "refused before allocating");
            assertEquals(0, opt.ownedBytes());
        }
    }

    /** Lengths beyond what a backend indexes: CPU_FAST's block count would overflow an int at 2^59. */
    @Test
    void lengthsBeyondWhatABackendIndexesAreRefused() {
        try (DeviceOptimizer fast = DeviceOptimizer.create(Backend.CPU_FAST, Sgd.builder().build());
             DeviceOptimizer cpu = DeviceOptimizer.create(Backend.CPU, Sgd.builder().build())) {
            long fastLimit = (long) (Integer.MAX_VALUE - 8) << 28;
            for (long length : new long[] {fastLimit + 1, 1L << 59, Long.MAX_VALUE}) {
                assertMessage(IllegalArgumentException.class, "at most " + fastLimit + " elements per tensor", () -> fast.allocate(length));
                assertMessage(IllegalArgumentException.class, "got " + length, () -> cpu.allocate(length));
            }
            assertEquals(0, fast.ownedBytes());
        }
    }
}
