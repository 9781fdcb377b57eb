package io.fusedopt.cpu;

import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepProgram;

/**
 * What both CPU step programs share: the control block lives in a Java object, the group table is
 * read afresh at every run, and a captured step is simply another run.
 */
abstract class HostStepProgram implements StepProgram {
    final StepControl control = new StepControl();

    @Override
    public final void groupsChanged() {
        // The table is read afresh at every run.
    }

    @Override
    public final void setInputs(float invGradScale, float maxGradNorm, boolean checkGrads, boolean skipNonFinite) {
        control.setInputs(invGradScale, maxGradNorm, checkGrads, skipNonFinite);
    }

    @Override
    public final void setDynamicScaling(boolean on, double growthFactor, double backoffFactor, int growthInterval) {
        control.setDynamicScaling(on, growthFactor, backoffFactor, growthInterval);
    }

    @Override
    public final void setScalerState(float scale, int growthTracker, long growths, long backoffs) {
        control.setScalerState(scale, growthTracker, growths, backoffs);
    }

    @Override
    public final void setRoundingSeed(long seed) {
        control.roundingSeed = seed;
    }

    @Override
    public final void setCounters(long step, long skippedSteps) {
        control.step = step;
        control.skippedSteps = skippedSteps;
    }

    @Override
    public final StepControl readControl() {
        return control.copy();
    }

    @Override
    public final CapturedStep capture() {
        return new CapturedStep() {
            @Override public void replay() { run(); }
            @Override public void close() {}
        };
    }
}
