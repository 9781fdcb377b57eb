package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** What a torch.optim user reaches for: names, a group's rate, one schedule for all, readable objects, arrays. */
class ConveniencesTest {
    private static final Adam ADAM_W = Adam.adamW().optLearningRate(1e-2).build();

    @Test
    void aParameterIsFoundByNameInAnyGroup() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, ADAM_W)) {
            Parameter w = opt.addGroup().add("layer1.weight", opt.allocate(4), opt.allocate(4));
            Parameter b = opt.addGroup().add("layer1.bias", opt.allocate(2), opt.allocate(2));
            assertSame(w, opt.parameter("layer1.weight").orElseThrow());
            assertSame(b, opt.parameter("layer1.bias").orElseThrow());
            assertEquals(Optional.empty(), opt.parameter("layer2.weight"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.parameter(null));
            assertEquals("name must not be null", e.getMessage());
        }
    }

    /** A name refused at registration is not found afterwards (nothing half-registered). */
    @Test
    void aRefusedRegistrationLeavesNoParameterToFind() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, ADAM_W)) {
            ParamGroup g = opt.addGroup();
            assertThrows(IllegalArgumentException.class, () -> g.add("w", opt.allocate(4), opt.allocate(5)));
            assertEquals(Optional.empty(), opt.parameter("w"));
        }
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aGroupsRateIsTheScheduledRateTheNextStepUses(Backend backend) {
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, ADAM_W)) {
            ParamGroup decayed = opt.addGroup();
            ParamGroup plain = opt.addGroup(ADAM_W.toBuilder().optLearningRate(3e-3).build());
            decayed.setSchedule(LrSchedule.linearWarmup(4));
            decayed.add("w", opt.allocate(8), opt.allocate(8));
            plain.add("b", opt.allocate(8), opt.allocate(8));
            for (int t = 0; t < 6; t++) {
                assertEquals(LrSchedule.linearWarmup(4).learningRateAt(1e-2, t), decayed.learningRate(), "step " + t);
                assertEquals((float) 3e-3, plain.learningRate(), "no schedule: the configuration's rate");
                assertArrayEquals(new float[] {decayed.learningRate(), plain.learningRate()}, opt.lastLearningRates());
                opt.step();
            }
        }
    }

    @Test
    void oneCallSetsAScheduleOnEveryGroupOrNone() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, ADAM_W)) {
            ParamGroup a = opt.addGroup();
            ParamGroup b = opt.addGroup(ADAM_W.toBuilder().optWeightDecay(0).build());
            LrSchedule cosine = LrSchedule.cosineWithWarmup(2, 10, 0.1);
            opt.setSchedule(cosine);
            assertEquals(Optional.of(cosine), a.schedule());
            assertEquals(Optional.of(cosine), b.schedule());
            opt.setSchedule(null);
            assertEquals(Optional.empty(), a.schedule());
            assertEquals(Optional.empty(), b.schedule());
        }
    }

    /** Checked for every group before any changes: a schedule one group's rate cannot take changes no group. */
    @Test
    void aScheduleOneGroupCannotTakeIsRefusedForAll() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, Sgd.builder().optLearningRate(1).build())) {
            ParamGroup small = opt.addGroup();
            ParamGroup huge = opt.addGroup(Sgd.builder().optLearningRate(1e38).build());
            LrSchedule kept = LrSchedule.constant(0.5);
            small.setSchedule(kept);
            LrSchedule growing = LrSchedule.constant(100);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.setSchedule(growing));
            assertTrue(e.getMessage().startsWith("group 1: "), e.getMessage());
            assertEquals(Optional.of(kept), small.schedule(), "group 0 unchanged");
            assertEquals(Optional.empty(), huge.schedule());
        }
    }

    @Test
    void toStringShowsWhatADebuggerUserLooksFor() {
        try (DeviceOptimizer opt = DeviceOptimizer.builder(ADAM_W).optBackend(Backend.CPU).optStatePrecision(Precision.FP32).build()) {
            ParamGroup g = opt.addGroup();
            g.setSchedule(LrSchedule.linearWarmup(4));
            Parameter w = g.add("encoder.w", opt.allocate(12, Precision.BF16), opt.allocate(12));
            Parameter b = opt.addGroup(ADAM_W.toBuilder().optWeightDecay(0).build()).add("encoder.b", opt.allocate(3), opt.allocate(3));
            b.freeze();
            opt.step();
            opt.step();
            assertEquals("DeviceOptimizer[CPU, adam, 2 groups, 2 tensors (1 frozen), step 2]", opt.toString());
            assertEquals("ParamGroup[0, " + ADAM_W + ", lr " + LrSchedule.linearWarmup(4).learningRateAt(1e-2, 2) + " (scheduled), "
                    + LrSchedule.linearWarmup(4) + ", 1 tensor]", g.toString());
            assertEquals("Parameter[encoder.w, 12 elements, BF16 (grad FP32) with fp32 master weights, group 0]", w.toString());
            assertEquals("Parameter[encoder.b, 3 elements, FP32, group 1, frozen]", b.toString());
            opt.close();
            assertEquals("DeviceOptimizer[CPU, adam, 2 groups, 2 tensors (1 frozen), closed]", opt.toString(), "no exception once closed");
        }
    }

    /** Java arrays are registered as they are: the step updates the param array and reads the grad array, no copies. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void arraysAreRegisteredInPlace(Backend backend) {
        float[] weights = {1f, 2f, 3f, 4f};
        float[] grads = {1f, 1f, 1f, 1f};
        try (DeviceOptimizer opt = DeviceOptimizer.create(backend, Sgd.builder().optLearningRate(0.5).build())) {
            Parameter p = opt.addGroup().add("w", weights, grads);
            opt.step();
            assertArrayEquals(new float[] {0.5f, 1.5f, 2.5f, 3.5f}, weights, "the caller's param array was updated");
            grads[2] = 4f; // the next step reads the array as it is now
            opt.step();
            assertArrayEquals(new float[] {0f, 1f, 0.5f, 3f}, weights);
            assertArrayEquals(weights, p.param().toArray());
            assertThrows(IllegalArgumentException.class, () -> opt.addGroup().add("again", weights, new float[4]),
                    "an array backs one registered tensor");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> opt.addGroup().add("n", null, grads));
            assertEquals("param array must not be null", e.getMessage());
        }
    }

    /** A group's variant of the defaults needs no cast; each algorithm's own builder keeps its own type. */
    @Test
    void theDefaultsReachTheirBuilderWithoutACast() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, ADAM_W)) {
            ParamGroup biases = opt.addGroup(opt.defaults().toBuilder().optWeightDecay(0).build());
            assertEquals(ADAM_W.toBuilder().optWeightDecay(0).build(), biases.config());
            Adam.Builder own = ADAM_W.toBuilder(); // covariant: Adam's options stay reachable
            assertEquals(0.95, own.optBetas(0.95, 0.999).build().beta1());
        }
        for (OptimizerConfig config : List.of(Sgd.builder().build(), Momentum.builder().setMomentum(0.9).build(), RmsProp.builder().build(),
                Adagrad.builder().build(), ADAM_W)) {
            OptimizerConfig derived = config.toBuilder().optLearningRate(0.25).optMaximize(true).build();
            assertEquals(config.getClass(), derived.getClass());
            assertEquals(config.withLearningRate(0.25).toBuilder().optMaximize(true).build(), derived);
        }
    }

    @Test
    void theLossScalesDeviceAddressIsRefusedWhereThereIsNone() {
        try (DeviceOptimizer fixed = DeviceOptimizer.create(Backend.CPU, ADAM_W);
             DeviceOptimizer cpu = DeviceOptimizer.builder(ADAM_W).optBackend(Backend.CPU_FAST).optNonFinitePolicy(NonFinitePolicy.SKIP_STEP)
                     .optDynamicLossScaling(DynamicLossScaling.gradScalerDefaults()).build()) {
            IllegalStateException off = assertThrows(IllegalStateException.class, fixed::lossScaleDevicePointer);
            assertTrue(off.getMessage().contains("dynamic loss scaling is off"), off.getMessage());
            IllegalStateException host = assertThrows(IllegalStateException.class, cpu::lossScaleDevicePointer);
            assertTrue(host.getMessage().contains("CPU_FAST backend keeps the loss scale in host memory"), host.getMessage());
            assertTrue(host.getMessage().contains("gradScale()"), host.getMessage());
        }
    }

    @Test
    void nothingAboutAnOptimizerWithoutTensorsNeedsATensor() {
        try (DeviceOptimizer opt = DeviceOptimizer.create(Backend.CPU, ADAM_W)) {
            assertEquals("DeviceOptimizer[CPU, adam, 0 groups, 0 tensors, step 0]", opt.toString());
            assertArrayEquals(new float[0], opt.lastLearningRates());
            assertFalse(opt.parameter("x").isPresent());
        }
    }
}
