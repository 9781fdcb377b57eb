package io.fusedopt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Fine-tuning with a new head in a group of its own: the optimizer has one group more than the
 * checkpoint of the pretrained model. A non-strict load restores the saved groups and leaves the
 * new one as it was; a strict load says how to do that.
 */
class NewHeadLoadTest {
    private static final Adam BACKBONE = Adam.adamW().optLearningRate(1e-2).build();
    private static final Adam HEAD = Adam.adamW().optLearningRate(3e-2).optWeightDecay(0).build();
    private static final LrSchedule HEAD_SCHEDULE = LrSchedule.constant(0.5);
    private static final int N = 8;

    private static float[] gradient(int seed) {
        return Scenario.gaussian(new Random(seed), N, 1f);
    }

    private static DeviceOptimizer pretrained(Backend backend) {
        DeviceOptimizer opt = DeviceOptimizer.create(backend, BACKBONE);
        TensorBuffer w = opt.allocate(N);
        w.copyFrom(gradient(1));
        opt.addGroup().add("backbone.w", w, opt.allocate(N));
        return opt;
    }

    /** The backbone in group 0 (fresh values) and the head in group 1, with its own configuration and schedule. */
    private static DeviceOptimizer withHead(Backend backend) {
        DeviceOptimizer opt = DeviceOptimizer.create(backend, BACKBONE);
        opt.addGroup().add("backbone.w", opt.allocate(N), opt.allocate(N));
        ParamGroup head = opt.addGroup(HEAD);
        head.setSchedule(HEAD_SCHEDULE);
        TensorBuffer h = opt.allocate(N);
        h.copyFrom(gradient(2));
        head.add("head.w", h, opt.allocate(N));
        return opt;
    }

    private static void step(DeviceOptimizer opt, int seed) {
        for (ParamGroup g : opt.groups()) for (Parameter p : g.parameters()) p.grad().copyFrom(gradient(seed + p.name().length()));
        opt.step();
    }

    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU", "CPU_FAST"})
    void aNonStrictLoadRestoresTheSavedGroupsAndKeepsTheNewHeadsGroup(Backend backend) throws Exception {
        try (DeviceOptimizer source = pretrained(backend); DeviceOptimizer target = withHead(backend);
             DeviceOptimizer headAlone = DeviceOptimizer.create(backend, HEAD)) {
            for (int t = 0; t < 3; t++) step(source, 10 + t);
            byte[] checkpoint = source.saveToBytes();

            CheckpointException strict = assertThrows(CheckpointException.class, () -> target.load(checkpoint));
            assertTrue(strict.getMessage().contains("groups is 1 in the checkpoint, 2 in this optimizer"), strict.getMessage());
            assertTrue(strict.getMessage().contains("optStrict(false)"), "says how: " + strict.getMessage());
            assertEquals(0, target.stepCount(), "the refused load changed nothing");

            LoadReport report = target.load(checkpoint, LoadOptions.builder().optStrict(false).build());
            assertEquals(List.of(1), report.extraGroups());
            assertEquals(List.of("head.w/param", "head.w/exp_avg", "head.w/exp_avg_sq"), report.missing());
            assertEquals(List.of("backbone.w/param", "backbone.w/exp_avg", "backbone.w/exp_avg_sq"), report.loaded());
            assertFalse(report.isComplete());
            assertTrue(report.toString().contains("groups not in the checkpoint [1]"), report.toString());

            ParamGroup head = target.groups().get(1);
            assertEquals(HEAD, head.config(), "the head's group keeps its configuration");
            assertEquals(Optional.of(HEAD_SCHEDULE), head.schedule(), "and its schedule");
            assertEquals(3, target.stepCount());
            Parameter headW = target.parameter("head.w").orElseThrow();
            assertEquals(0, headW.stepCount(), "the head's next update is its own step 1");
            assertArrayEquals(source.parameter("backbone.w").orElseThrow().param().toArray(),
                    target.parameter("backbone.w").orElseThrow().param().toArray());

            // Training goes on: the backbone as the pretrained run would, the head as a fresh optimizer's first step.
            TensorBuffer h = headAlone.allocate(N);
            h.copyFrom(gradient(2));
            ParamGroup aloneGroup = headAlone.addGroup();
            aloneGroup.setSchedule(HEAD_SCHEDULE);
            aloneGroup.add("head.w", h, headAlone.allocate(N));
            step(source, 20);
            step(target, 20);
            step(headAlone, 20);
            assertArrayEquals(source.parameter("backbone.w").orElseThrow().param().toArray(),
                    target.parameter("backbone.w").orElseThrow().param().toArray());
            assertArrayEquals(headAlone.parameter("head.w").orElseThrow().param().toArray(), headW.param().toArray());
        }
    }

    /** The other way round (a checkpoint with more groups) would drop a saved group's configuration: refused, strict or not. */
    @ParameterizedTest
    @EnumSource(value = Backend.class, names = {"CPU"})
    void aCheckpointWithMoreGroupsIsRefusedSayingWhatToAdd(Backend backend) throws Exception {
        try (DeviceOptimizer source = withHead(backend); DeviceOptimizer target = pretrained(backend)) {
            byte[] checkpoint = source.saveToBytes();
            for (boolean strict : new boolean[] {true, false}) {
                CheckpointException e = assertThrows(CheckpointException.class,
                        () -> target.load(checkpoint, LoadOptions.builder().optStrict(strict).build()));
                assertTrue(e.getMessage().contains("groups is 2 in the checkpoint, 1 in this optimizer: add groups"), e.getMessage());
            }
        }
    }
}
