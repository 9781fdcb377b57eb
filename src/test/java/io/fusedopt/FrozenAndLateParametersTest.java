package io.fusedopt;

import static io.fusedopt.PerTensorSteps.A;
import static io.fusedopt.PerTensorSteps.B;
import static io.fusedopt.PerTensorSteps.C;
import static io.fusedopt.PerTensorSteps.assertSameBits;
import static io.fusedopt.PerTensorSteps.snapshot;
import static io.fusedopt.ValidationTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.fusedopt.internal.Safetensors;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Frozen and late-added tensors on both CPU backends: each tensor follows its own step count (its
 * bias corrections, first-step rule and rate decay), bit for bit with an optimizer that only ever
 * held it; checkpoints keep the counts and frozen flags; refused calls change nothing.
 */
class FrozenAndLateParametersTest {

    static Stream<Arguments> backendsAndConfigs() {
        return Stream.of(Backend.CPU, Backend.CPU_FAST).flatMap(backend ->
                PerTensorSteps.stepDependentConfigs().stream().map(config -> Arguments.of(backend, config)));
    }

    @ParameterizedTest
    @MethodSource("backendsAndConfigs")
    void unfreezingAfter100StepsContinuesTheTensorsOwnCount(Backend backend, OptimizerConfig config) {
        PerTensorSteps.unfreezingAfter100Steps(backend, config);
    }

    @ParameterizedTest
    @MethodSource("backendsAndConfigs")
    void aLateTensorAndALateGroupEqualAFreshOptimizer(Backend backend, OptimizerConfig config) {
        PerTensorSteps.lateTensorAndGroup(backend, config);
    }

    /** Saved mid-run (a frozen tensor, a late one), loaded into a fresh registration: the same counts, flags and bits. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aCheckpointKeepsEachTensorsStepCountAndFrozenFlag(Backend backend) throws Exception {
        try (PerTensorSteps.Run whole = PerTensorSteps.savedRun(backend);
             PerTensorSteps.Run resumed = PerTensorSteps.registeredForResume(backend);
             PerTensorSteps.Run otherBackend = PerTensorSteps.registeredForResume(backend == Backend.CPU ? Backend.CPU_FAST : Backend.CPU)) {
            PerTensorSteps.assertCountsAtSave(whole);
            byte[] saved = whole.opt.saveToBytes();
            String header = new String(saved, 0, Math.min(saved.length, 8192), StandardCharsets.UTF_8);
            assertTrue(header.contains("\"tensor_step.b\":\"5\"") && header.contains("\"frozen.b\":\"true\"")
                    && header.contains("\"tensor_step.c\":\"5\"") && !header.contains("tensor_step.a"), header);
            resumed.opt.load(saved);
            otherBackend.opt.load(saved);
            PerTensorSteps.assertCountsAtSave(resumed);
            PerTensorSteps.assertCountsAtSave(otherBackend);
            PerTensorSteps.continueAfterSave(whole);
            PerTensorSteps.continueAfterSave(resumed);
            PerTensorSteps.continueAfterSave(otherBackend);
            PerTensorSteps.assertSameEnd(whole, resumed, backend + " resumed");
            PerTensorSteps.assertSameEnd(whole, otherBackend, backend + " resumed on the other CPU backend");
        }
    }

    /** An optimizer that never froze or added late writes none of the new entries (CheckpointFormatTest checks the bytes). */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aCheckpointWithoutFrozenOrLateTensorsHasNoPerTensorEntries(Backend backend) throws Exception {
        try (PerTensorSteps.Run run = PerTensorSteps.registeredForResume(backend)) {
            run.steps(3);
            String header = new String(run.opt.saveToBytes(), 0, 4096, StandardCharsets.UTF_8);
            assertFalse(header.contains("tensor_step.") || header.contains("frozen."), header);
        }
    }

    /** A non-strict load: a tensor the checkpoint lacks restarts at its own step 0 (as if added now), bit for bit. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aTensorANonStrictLoadDidNotRestoreStartsAtItsOwnFirstStep(Backend backend) throws Exception {
        try (PerTensorSteps.Run saved = new PerTensorSteps.Run(backend);
             PerTensorSteps.Run loading = new PerTensorSteps.Run(backend)) {
            saved.add(saved.opt.addGroup(), A);
            saved.steps(6);
            ParamGroup group = loading.opt.addGroup();
            loading.add(group, A);
            Parameter c = loading.add(group, C);
            LoadReport report = loading.opt.load(saved.opt.saveToBytes(), LoadOptions.builder().optStrict(false).build());
            assertTrue(report.missing().contains("c/exp_avg"), report.toString());
            assertEquals(6, loading.opt.stepCount());
            assertEquals(6, loading.param(A).stepCount());
            assertEquals(0, c.stepCount(), "its states were not restored: it starts afresh");
            loading.steps(3);
            assertEquals(3, c.stepCount());
            assertSameBits(PerTensorSteps.reference(Adam.adamW().optLearningRate(1e-2).build(), C, 3), snapshot(c),
                    "c, fresh in a resumed optimizer");
            assertSameBits(PerTensorSteps.reference(Adam.adamW().optLearningRate(1e-2).build(), A, 9), snapshot(loading.param(A)),
                    "a, resumed");
        }
    }

    /**
     * A captured step holds the set of tensors updated when it was captured: after freezing,
     * replaying it is refused and changes nothing; a new capture replays like stepping.
     */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void replayingACaptureOfAnOlderTensorSetIsRefused(Backend backend) {
        try (PerTensorSteps.Run replayed = PerTensorSteps.registeredForResume(backend);
             PerTensorSteps.Run stepped = PerTensorSteps.registeredForResume(backend)) {
            replayedAndSteppedAgree(replayed, stepped);
        }
    }

    static void replayedAndSteppedAgree(PerTensorSteps.Run replayed, PerTensorSteps.Run stepped) {
        StepGraph old = replayed.opt.captureStep();
        replayed.feed();
        old.replay();
        stepped.step();
        replayed.param(B).freeze();
        stepped.param(B).freeze();
        List<float[]> before = snapshot(replayed.param(A));
        replayed.feed();
        assertMessage(IllegalStateException.class, "capture the step again", old::replay);
        assertEquals(1, replayed.opt.stepCount(), "the refused replay counted no step");
        assertSameBits(before, snapshot(replayed.param(A)), "the refused replay changed nothing");
        StepGraph fresh = replayed.opt.captureStep();
        for (int i = 0; i < 3; i++) {
            replayed.feed();
            fresh.replay();
            stepped.step();
        }
        old.close();
        fresh.close();
        for (var s : List.of(A, B, C)) {
            assertEquals(stepped.param(s).stepCount(), replayed.param(s).stepCount());
            assertSameBits(snapshot(stepped.param(s)), snapshot(replayed.param(s)), "replayed vs stepped: " + s.name());
        }
        assertEquals(1, replayed.param(B).stepCount());
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void freezingTwiceOrUnfreezingAnActiveTensorIsRefusedAndChangesNothing(Backend backend) {
        try (PerTensorSteps.Run run = PerTensorSteps.registeredForResume(backend)) {
            run.steps(2);
            Parameter b = run.param(B);
            assertMessage(IllegalStateException.class, "parameter 'b' is not frozen", b::unfreeze);
            assertFalse(b.isFrozen());
            b.freeze();
            assertMessage(IllegalStateException.class, "parameter 'b' is already frozen", b::freeze);
            assertTrue(b.isFrozen());
            run.steps(2);
            assertEquals(2, b.stepCount(), "the refused freeze moved nothing");
            assertEquals(4, run.param(A).stepCount());
        }
    }

    /** Unfreezing with a new gradient buffer reads it from then on, bit for bit with the reference; the old one is released. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void unfreezingWithANewGradientReadsIt(Backend backend) {
        PerTensorSteps.unfreezingAfter100Steps(backend, PerTensorSteps.stepDependentConfigs().get(0), true);
    }

    /** A frozen tensor's new gradient of another length, registered elsewhere or sharing memory is refused; it stays frozen. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aFrozenTensorsNewGradientOfAnotherLengthIsRefused(Backend backend) {
        try (PerTensorSteps.Run run = PerTensorSteps.registeredForResume(backend)) {
            run.steps(2);
            Parameter b = run.param(B);
            assertMessage(IllegalStateException.class, "parameter 'b' is not frozen", () -> b.unfreeze(run.opt.allocate(B.length())));
            b.freeze();
            TensorBuffer oldGrad = b.grad();
            assertMessage(IllegalArgumentException.class, "frozen parameter 'b' has 37 elements but its new grad has 40",
                    () -> b.unfreeze(run.opt.allocate(40)));
            Parameter e = run.add(run.opt.addGroup(), new PerTensorSteps.Spec("e", B.length(), Precision.FP32));
            assertMessage(IllegalArgumentException.class, "new grad buffer already backs grad of 'e'", () -> b.unfreeze(e.grad()));
            assertMessage(IllegalArgumentException.class, "param and grad must be different buffers", () -> b.unfreeze(b.param()));
            float[] host = new float[100];
            try (DeviceOptimizer cpu = DeviceOptimizer.create(Backend.CPU, Sgd.builder().build())) {
                cpu.addGroup().add("w", cpu.wrapHost(java.nio.FloatBuffer.wrap(host, 0, 50)), cpu.allocate(50));
                Parameter w = cpu.groups().get(0).parameters().get(0);
                TensorBuffer other = cpu.allocate(50);
                cpu.addGroup().add("x", other, cpu.allocate(50));
                w.freeze();
                assertMessage(IllegalArgumentException.class, "shares memory with param 'w'",
                        () -> w.unfreeze(cpu.wrapHost(java.nio.FloatBuffer.wrap(host, 40, 50))));
                assertMessage(IllegalArgumentException.class, "does not belong to this optimizer",
                        () -> w.unfreeze(run.opt.allocate(50)));
                assertTrue(w.isFrozen());
            }
            assertTrue(b.isFrozen(), "refused: still frozen");
            assertTrue(b.grad() == oldGrad, "refused: the gradient is unchanged");
            assertEquals(2, b.stepCount());
            assertMessage(IllegalStateException.class, "registered as grad of 'b'", oldGrad::close);
            b.unfreeze(oldGrad); // the same buffer: a plain unfreeze
            run.steps(1);
            assertEquals(3, b.stepCount());
        }
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aStepWithEveryTensorFrozenIsRefusedAndCountsNothing(Backend backend) {
        try (PerTensorSteps.Run run = new PerTensorSteps.Run(backend)) {
            Parameter a = run.add(run.opt.addGroup(), A);
            run.steps(2);
            a.freeze();
            List<float[]> before = snapshot(a);
            assertMessage(IllegalStateException.class, "every registered tensor is frozen (1)", run.opt::step);
            assertMessage(IllegalStateException.class, "every registered tensor is frozen", run.opt::captureStep);
            assertEquals(2, run.opt.stepCount());
            assertSameBits(before, snapshot(a), "nothing changed");
            a.unfreeze();
            run.step();
            assertEquals(3, a.stepCount());
        }
    }

    /** Freezing, unfreezing and adding after the optimizer closed or a step failed are refused as other calls are. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void freezingAClosedOptimizersTensorIsRefused(Backend backend) {
        PerTensorSteps.Run run = PerTensorSteps.registeredForResume(backend);
        run.steps(1);
        run.close();
        assertMessage(IllegalStateException.class, "closed", run.param(A)::freeze);
        assertMessage(IllegalStateException.class, "closed", run.param(A)::unfreeze);
        assertMessage(IllegalStateException.class, "closed", run.param(A)::stepCount);
        assertMessage(IllegalStateException.class, "closed", run.param(A)::isFrozen);
    }

    /** Damaged per-tensor entries are refused, naming the entry, and the optimizer is as it was. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void damagedPerTensorEntriesAreRefusedAndChangeNothing(Backend backend) throws Exception {
        byte[] saved;
        try (PerTensorSteps.Run run = PerTensorSteps.savedRun(backend)) {
            saved = run.opt.saveToBytes();
        }
        assertRefused(backend, withMetadata(saved, "step", "1"), "tensor_step.b is 5, more than the optimizer's step 1");
        assertRefused(backend, withMetadata(saved, "frozen.b", "yes"), "frozen.b 'yes' is neither true nor false");
        assertRefused(backend, withMetadata(saved, "tensor_step.c", "-1"), "tensor_step.c '-1' is not a count");
        assertRefused(backend, withMetadata(saved, "tensor_step.q", "1"), "tensor_step.q names no parameter");
        assertRefused(backend, withMetadata(saved, "frozen.q", "true"), "frozen.q names no parameter");
    }

    private static void assertRefused(Backend backend, byte[] damaged, String message) {
        try (PerTensorSteps.Run run = PerTensorSteps.registeredForResume(backend)) {
            run.steps(2);
            List<float[]> before = snapshot(run.param(C));
            assertMessage(CheckpointException.class, message, () -> run.opt.load(damaged));
            assertEquals(2, run.opt.stepCount());
            assertEquals(2, run.param(B).stepCount());
            assertFalse(run.param(B).isFrozen());
            assertSameBits(before, snapshot(run.param(C)), "a refused load changed nothing");
            run.steps(1);
            assertEquals(3, run.param(C).stepCount());
        }
    }

    /** The checkpoint with one metadata entry set, the header checksum recomputed (a well-formed file saying something else). */
    static byte[] withMetadata(byte[] checkpoint, String key, String value) throws java.io.IOException {
        Safetensors.Header header = Safetensors.parse("bytes", checkpoint.length, checkpoint,
                k -> java.util.Arrays.copyOfRange(checkpoint, 8, 8 + k));
        java.util.Map<String, String> metadata = new java.util.LinkedHashMap<>(header.metadata());
        metadata.remove(Safetensors.HEADER_CRC_KEY);
        metadata.put(key, value);
        byte[] newHeader = Safetensors.encodeHeader(metadata, header.entries());
        byte[] out = new byte[newHeader.length + (int) header.dataLength()];
        System.arraycopy(newHeader, 0, out, 0, newHeader.length);
        System.arraycopy(checkpoint, (int) header.dataStart(), out, newHeader.length, (int) header.dataLength());
        return out;
    }
}
