package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Bad input is refused with an exception that names the problem, and changes nothing. */
class ValidationTest {

    static Stream<Arguments> badHyperParameters() {
        return Stream.of(
                bad("learningRate", () -> Adam.builder().optLearningRate(-1e-3).build()),
                bad("learningRate", () -> Sgd.builder().optLearningRate(Double.NaN).build()),
                bad("learningRate", () -> RmsProp.builder().optLearningRate(Double.POSITIVE_INFINITY).build()),
                bad("learningRate", () -> Adagrad.builder().optLearningRate(1e39).build()), // overflows float32
                bad("beta1", () -> Adam.builder().optBetas(1.0, 0.999).build()),
                bad("beta2", () -> Adam.builder().optBetas(0.9, 0.999999999).build()), // rounds to 1 in float32
                bad("beta1", () -> Adam.builder().optBetas(-0.1, 0.999).build()),
                bad("beta2", () -> Adam.builder().optBetas(0.9, Double.NaN).build()),
                bad("epsilon", () -> Adam.builder().optEpsilon(0).build()),
                bad("epsilon", () -> Adam.builder().optEpsilon(-1e-8).build()),
                bad("epsilon", () -> RmsProp.builder().optEpsilon(1e-50).build()), // rounds to 0 in float32
                bad("epsilon", () -> Adagrad.builder().optEpsilon(Double.NaN).build()),
                bad("weightDecay", () -> Adam.adamW().optWeightDecay(-0.01).build()),
                bad("weightDecay", () -> Sgd.builder().optWeightDecay(Double.NaN).build()),
                bad("momentum", () -> Momentum.builder().setMomentum(1.0).build()),
                bad("momentum", () -> Momentum.builder().setMomentum(-0.5).build()),
                bad("momentum is required", () -> Momentum.builder().build()),
                bad("dampening", () -> Momentum.builder().setMomentum(0.9).optDampening(1.5).build()),
                bad("nesterov", () -> Momentum.builder().setMomentum(0.9).optDampening(0.1).optNesterov(true).build()),
                bad("nesterov", () -> Momentum.builder().setMomentum(0).optNesterov(true).build()),
                bad("velocity form", () -> Momentum.builder().setMomentum(0.9).optDampening(0.1)
                        .optForm(Momentum.Form.VELOCITY).build()),
                bad("alpha", () -> RmsProp.builder().optAlpha(1.0).build()),
                bad("momentum", () -> RmsProp.builder().optMomentum(Double.NaN).build()),
                bad("lrDecay", () -> Adagrad.builder().optLrDecay(-1).build()),
                bad("initialAccumulatorValue", () -> Adagrad.builder().optInitialAccumulatorValue(-1).build()),
                bad("form", () -> Adam.builder().optForm(null).build()));
    }

    private static Arguments bad(String named, Supplier<OptimizerConfig> build) {
        return Arguments.of(named, build);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badHyperParameters")
    void hyperParameterOutsideItsDomainIsRefused(String named, Supplier<OptimizerConfig> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().contains(named), "message should name " + named + ": " + e.getMessage());
    }

    /** One rule for every hyper-parameter: the float32 the kernels use must be in the domain, and not 0 where 0 was not asked for. */
    static Stream<Arguments> valuesThatRoundOutOfTheirDomain() {
        return Stream.of(
                bad("learningRate", () -> Adam.builder().optLearningRate(1e-50).build()),
                bad("learningRate", () -> Sgd.builder().optLearningRate(1e-46).build()),
                bad("learningRate", () -> Momentum.builder().setMomentum(0.9).optLearningRate(-1e-50).build()),
                bad("weightDecay", () -> Adam.adamW().optWeightDecay(1e-50).build()),
                bad("momentum", () -> RmsProp.builder().optMomentum(1e-50).build()),
                bad("dampening", () -> Momentum.builder().setMomentum(0.9).optDampening(1e-50).build()),
                bad("beta1", () -> Adam.builder().optBetas(1e-50, 0.999).build()),
                bad("beta2", () -> Adam.builder().optBetas(0.9, 0.999999999).build()),
                bad("alpha", () -> RmsProp.builder().optAlpha(0.99999999999).build()),
                bad("epsilon", () -> Adam.builder().optEpsilon(1e-50).build()),
                bad("lrDecay", () -> Adagrad.builder().optLrDecay(1e-50).build()),
                bad("initialAccumulatorValue", () -> Adagrad.builder().optInitialAccumulatorValue(1e-60).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("valuesThatRoundOutOfTheirDomain")
    void hyperParametersAreCheckedAsTheFloat32TheKernelsUse(String named, Supplier<OptimizerConfig> build) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, build::get);
        assertTrue(e.getMessage().contains(named) && e.getMessage().contains("rounds to") && e.getMessage().contains("in float32"),
                "message should name " + named + " and what it rounds to in float32: " + e.getMessage());
    }

    @Test
    void smallValuesThatFloat32HoldsAreAccepted() {
        assertEquals(1e-40, Adam.builder().optLearningRate(1e-40).build().learningRate()); // a float32 subnormal
        assertEquals(0.0, Sgd.builder().optLearningRate(0).build().learningRate());
        assertEquals(-0.0, Sgd.builder().optWeightDecay(-0.0).build().weightDecay());
        assertEquals(1.0, Momentum.builder().setMomentum(0.9).optDampening(1 - 1e-12).build().dampening(), 1e-9); // rounds to 1: in [0, 1]
    }

    @Test
    void aScheduleValueThatRoundsToZeroIsRefusedAndChangesNothing() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().optLearningRate(0.5).build())) {
            ParamGroup group = opt.addGroup();
            group.add("w", opt.allocate(1), opt.allocate(1));
            assertMessage(IllegalArgumentException.class, "rounds to 0.0 in float32", () -> group.setLearningRate(1e-50));
            assertEquals(0.5, group.config().learningRate());
            assertMessage(IllegalArgumentException.class, "rounds to 0.0 in float32",
                    () -> DeviceOptimizer.builder(Sgd.builder().build()).optMaxGradNorm(1e-50));
        }
    }

    @Test
    void badScheduleValueLeavesTheGroupUnchanged() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            ParamGroup group = opt.addGroup();
            OptimizerConfig before = group.config();
            assertThrows(IllegalArgumentException.class, () -> group.setLearningRate(-1));
            assertThrows(IllegalArgumentException.class, () -> group.setLearningRate(Double.NaN));
            assertEquals(before, group.config());
        }
    }

    @Test
    void configChangesThatWouldChangeTheStateAreRefused() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            ParamGroup group = opt.addGroup();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> group.setConfig(Adam.builder().optAmsgrad(true).build()));
            assertTrue(e.getMessage().contains("max_exp_avg_sq") || e.getMessage().contains("MAX_EXP_AVG_SQ"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> group.setConfig(Sgd.builder().build()));
            assertEquals(List.of(group), opt.groups()); // a group of another algorithm is added (MixedAlgorithmGroupsTest), not a change
            group.setConfig(Adam.adamW().optLearningRate(0.5).build()); // hyper-parameters only: fine
            assertEquals(0.5, group.config().learningRate());
        }
    }

    @Test
    void badTensorsAreRefusedAndNothingIsRegistered() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build());
             DeviceOptimizer other = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            ParamGroup group = opt.addGroup();
            TensorBuffer p = opt.allocate(4);
            TensorBuffer g3 = opt.allocate(3);
            TensorBuffer g = opt.allocate(4);
            long ownedBefore = opt.ownedBytes();

            assertMessage(IllegalArgumentException.class, "3", () -> group.add("w", p, g3));
            assertMessage(IllegalArgumentException.class, "param", () -> group.add("w", null, g));
            assertMessage(IllegalArgumentException.class, "grad", () -> group.add("w", p, null));
            assertMessage(IllegalArgumentException.class, "name", () -> group.add(" ", p, g));
            assertMessage(IllegalArgumentException.class, "different", () -> group.add("w", p, p));
            assertMessage(IllegalArgumentException.class, "does not belong", () -> group.add("w", other.allocate(4), g));
            assertEquals(List.of(), group.parameters());
            assertEquals(ownedBefore, opt.ownedBytes(), "no state may be left allocated by a refused registration");

            group.add("w", p, g); // the name and the buffers are still free
            assertMessage(IllegalArgumentException.class, "already exists", () -> group.add("w", opt.allocate(4), opt.allocate(4)));
            assertMessage(IllegalArgumentException.class, "already backs", () -> group.add("w2", p, opt.allocate(4)));
            assertEquals(1, group.parameters().size());
        }
    }

    @Test
    void nullDevicePointerAndBadCopiesAreRefused() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().build())) {
            assertMessage(IllegalArgumentException.class, "null", () -> opt.wrapDevicePointer(0, 16));
            assertMessage(UnsupportedOperationException.class, "no device memory", () -> opt.wrapDevicePointer(0x1000, 16));
            assertMessage(IllegalArgumentException.class, "length", () -> opt.allocate(-1));
            TensorBuffer b = opt.allocate(4);
            assertMessage(IllegalArgumentException.class, "does not match", () -> b.copyFrom(new float[5]));
            assertThrows(IndexOutOfBoundsException.class, () -> b.copyFrom(new float[4], 0, 1, 4));
            assertThrows(IndexOutOfBoundsException.class, () -> b.copyTo(-1, new float[4], 0, 1));
            assertThrows(IndexOutOfBoundsException.class, () -> b.copyTo(0, new float[4], 2, 3));
            assertThrows(NullPointerException.class, () -> b.copyFrom(null));
            assertArrayEquals(new float[4], b.toArray(), "refused copies must not have written anything");
        }
    }

    @Test
    void aCudaStreamForTheCpuBackendIsRefused() {
        assertMessage(IllegalArgumentException.class, "CPU backend",
                () -> DeviceOptimizer.builder(Sgd.builder().build()).optBackend(Backend.CPU).optCudaStream(0x1234).build());
    }

    @Test
    void stateIsReadOnlyAndNamed() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            Parameter w = opt.addGroup().add("w", opt.allocate(2), opt.allocate(2));
            assertEquals(List.of(StateKind.EXP_AVG, StateKind.EXP_AVG_SQ), w.stateKinds());
            RmsProp centeredMomentum = RmsProp.builder().optCentered(true).optMomentum(0.9).build();
            try (DeviceOptimizer rms = DeviceOptimizer.create(Backend.CPU, centeredMomentum)) {
                Parameter r = rms.addGroup().add("r", rms.allocate(1), rms.allocate(1));
                assertEquals(centeredMomentum.stateKinds(), r.stateKinds(), "the algorithm's order");
            }
            assertMessage(UnsupportedOperationException.class, "read-only", () -> w.state(StateKind.EXP_AVG).copyFrom(new float[2]));
            assertMessage(IllegalArgumentException.class, "max_exp_avg_sq", () -> w.state(StateKind.MAX_EXP_AVG_SQ));
        }
    }

    /** A public call given null for one argument, and the name its message must give. */
    private record NullCall(String argument, Executable call) {}

    /**
     * Null for an argument of the public API: refused naming the argument, with nothing changed. As
     * the rest of the API, an IllegalArgumentException "NAME must not be null"; the copy methods of
     * TensorBuffer throw Objects.requireNonNull's NullPointerException, whose message is the name.
     * A JVM's helpful NullPointerException message ("Cannot invoke ... because "kind" is null")
     * does not count: it is a crash inside the library, and without debug information it names
     * no argument.
     */
    @Test
    void nullArgumentsAreRefusedNamingTheArgument() {
        Sgd sgd = Sgd.builder().build();
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Adam.builder().build())) {
            ParamGroup group = opt.addGroup();
            TensorBuffer w = opt.allocate(2);
            TensorBuffer spare = opt.allocate(2);
            Parameter p = group.add("w", w, opt.allocate(2));
            DeviceOptimizer.Builder builder = DeviceOptimizer.builder(sgd);
            List<NullCall> calls = new ArrayList<>(List.of(
                    new NullCall("defaults", () -> DeviceOptimizer.builder(null)),
                    new NullCall("backend", () -> DeviceOptimizer.create(null, sgd)),
                    new NullCall("defaults", () -> DeviceOptimizer.create(Backend.CPU, null)),
                    new NullCall("backend", () -> builder.optBackend(null)),
                    new NullCall("state precision", () -> builder.optStatePrecision(null)),
                    new NullCall("non-finite policy", () -> builder.optNonFinitePolicy(null)),
                    new NullCall("config", () -> opt.addGroup(null)),
                    new NullCall("config", () -> group.setConfig(null)),
                    new NullCall("precision", () -> opt.allocate(2, null)),
                    new NullCall("precision", () -> opt.wrapDevicePointer(1024, 2, null)),
                    new NullCall("array", () -> opt.wrapHost((float[]) null)),
                    new NullCall("buffer", () -> opt.wrapHost((FloatBuffer) null)),
                    new NullCall("file", () -> opt.save((Path) null)),
                    new NullCall("options", () -> opt.save(Path.of("x"), (SaveOptions) null)),
                    new NullCall("output stream", () -> opt.save((OutputStream) null)),
                    new NullCall("options", () -> opt.saveToBytes(null)),
                    new NullCall("file", () -> opt.load((Path) null)),
                    new NullCall("input stream", () -> opt.load((InputStream) null)),
                    new NullCall("checkpoint bytes", () -> opt.load((byte[]) null)),
                    new NullCall("options", () -> opt.load(new byte[8], null)),
                    new NullCall("parameter name", () -> group.add(null, spare, opt.allocate(2))),
                    new NullCall("param", () -> group.add("v", null, spare)),
                    new NullCall("grad", () -> group.add("v", spare, null)),
                    new NullCall("kind", () -> p.state(null)),
                    new NullCall("source", () -> w.copyFrom(null)),
                    new NullCall("source", () -> w.copyFrom(null, 0, 0, 1)),
                    new NullCall("destination", () -> w.copyTo(null)),
                    new NullCall("destination", () -> w.copyTo(0, null, 0, 1)),
                    new NullCall("destination", () -> p.state(StateKind.EXP_AVG).copyTo(null)),
                    new NullCall("milestones", () -> LrSchedule.multiStep(0.1, (long[]) null)),
                    new NullCall("schedules", () -> LrSchedule.sequence(null)),
                    new NullCall("milestones", () -> LrSchedule.sequence(List.of(LrSchedule.constant()), (long[]) null)),
                    new NullCall("weightDecayMode", () -> Adam.builder().optWeightDecayMode(null).build()),
                    new NullCall("form", () -> Adam.builder().optForm(null).build()),
                    new NullCall("form", () -> Momentum.builder().setMomentum(0.9).optForm(null).build()),
                    new NullCall("optimizer", () -> ReduceLrOnPlateau.builder(null)),
                    new NullCall("mode", () -> ReduceLrOnPlateau.builder(opt).optMode(null)),
                    new NullCall("loaded", () -> new LoadReport(null, List.of(), List.of(), Map.of(), true)),
                    new NullCall("missing", () -> new LoadReport(List.of(), null, List.of(), Map.of(), true)),
                    new NullCall("unexpected", () -> new LoadReport(List.of(), List.of(), null, Map.of(), true)),
                    new NullCall("mismatched", () -> new LoadReport(List.of(), List.of(), List.of(), null, true)),
                    new NullCall("converted", () -> new LoadReport(List.of(), List.of(), List.of(), Map.of(), true, List.of(), null)),
                    new NullCall("report", () -> new NonFiniteGradientException(null))));
            calls.add(new NullCall("new grad of 'w'", () -> {
                p.freeze();
                try {
                    p.unfreeze(null);
                } finally {
                    p.unfreeze();
                }
            }));
            for (NullCall c : calls) {
                RuntimeException e = assertThrows(RuntimeException.class, c.call(), c.argument());
                boolean named = e instanceof IllegalArgumentException && e.getMessage().contains(c.argument() + " must not be null")
                        || e instanceof NullPointerException && c.argument().equals(e.getMessage());
                assertTrue(named, "null for '" + c.argument() + "' should be refused naming it: " + e);
            }
            assertEquals(List.of(p), group.parameters(), "nothing registered");
            assertEquals(1, opt.groups().size(), "no group added");
            assertEquals(0, opt.stepCount());
        }
    }

    /** optCpuThreads: 1 to 4 per available processor (10,000 used to start 10,000 threads). */
    @Test
    void aThreadCountBeyondFourPerProcessorIsRefused() {
        int max = 4 * Runtime.getRuntime().availableProcessors();
        DeviceOptimizer.Builder builder = DeviceOptimizer.builder(Sgd.builder().build()).optBackend(Backend.CPU_FAST);
        for (int threads : new int[] {10_000, max + 1, 0, -1}) {
            assertMessage(IllegalArgumentException.class, "CPU threads must be in [1, " + max + "]", () -> builder.optCpuThreads(threads));
            assertMessage(IllegalArgumentException.class, "got " + threads, () -> builder.optCpuThreads(threads));
        }
        try (DeviceOptimizer opt = builder.optCpuThreads(max).build()) {
            assertTrue(opt.deviceDescription().contains(max + " of "), opt.deviceDescription());
        }
    }

    static <T extends Throwable> void assertMessage(Class<T> type, String fragment, org.junit.jupiter.api.function.Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(fragment),
                "expected a message containing '" + fragment + "', got: " + e.getMessage());
    }
}
