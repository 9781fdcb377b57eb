package io.fusedopt;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Frozen and late-added tensors on the device: the finalize kernel derives each entry's scalars
 * and first-step flag from its own step (the counter minus the entry's offset), bit for bit with a
 * CPU reference optimizer that only ever held the tensor; checkpoints resume across backends;
 * captures of an older tensor set are refused.
 */
@Tag("gpu")
class CudaFrozenAndLateParametersTest {

    @BeforeEach
    void requireGpu() {
        GpuTests.assumeGpu();
    }

    static java.util.List<OptimizerConfig> configs() {
        return PerTensorSteps.stepDependentConfigs();
    }

    @ParameterizedTest
    @MethodSource("configs")
    void unfreezingAfter100StepsContinuesTheTensorsOwnCount(OptimizerConfig config) {
        PerTensorSteps.unfreezingAfter100Steps(Backend.CUDA, config);
    }

    @ParameterizedTest
    @MethodSource("configs")
    void aLateTensorAndALateGroupEqualAFreshOptimizer(OptimizerConfig config) {
        PerTensorSteps.lateTensorAndGroup(Backend.CUDA, config);
    }

    /** Unfrozen with a new device gradient buffer, read from then on, bit for bit with the reference. */
    @Test
    void unfreezingWithANewGradientReadsIt() {
        PerTensorSteps.unfreezingAfter100Steps(Backend.CUDA, PerTensorSteps.stepDependentConfigs().get(0), true);
    }

    /** Saved on CUDA (a frozen tensor, a late one), resumed on CUDA and on the CPU reference: same counts and bits. */
    @Test
    void aCheckpointKeepsEachTensorsStepCountAcrossBackends() throws Exception {
        try (PerTensorSteps.Run whole = PerTensorSteps.savedRun(Backend.CUDA);
             PerTensorSteps.Run onCuda = PerTensorSteps.registeredForResume(Backend.CUDA);
             PerTensorSteps.Run onCpu = PerTensorSteps.registeredForResume(Backend.CPU)) {
            PerTensorSteps.assertCountsAtSave(whole);
            byte[] saved = whole.opt.saveToBytes();
            onCuda.opt.load(saved);
            onCpu.opt.load(saved);
            PerTensorSteps.assertCountsAtSave(onCuda);
            PerTensorSteps.assertCountsAtSave(onCpu);
            PerTensorSteps.continueAfterSave(whole);
            PerTensorSteps.continueAfterSave(onCuda);
            PerTensorSteps.continueAfterSave(onCpu);
            PerTensorSteps.assertSameEnd(whole, onCuda, "resumed on CUDA");
            PerTensorSteps.assertSameEnd(whole, onCpu, "resumed on the CPU reference");
        }
    }

    /** A CUDA graph captured before a freeze is refused (its tables are freed), a new one replays like stepping. */
    @Test
    void replayingACaptureOfAnOlderTensorSetIsRefused() {
        try (PerTensorSteps.Run replayed = PerTensorSteps.registeredForResume(Backend.CUDA);
             PerTensorSteps.Run stepped = PerTensorSteps.registeredForResume(Backend.CUDA)) {
            FrozenAndLateParametersTest.replayedAndSteppedAgree(replayed, stepped);
        }
    }
}
