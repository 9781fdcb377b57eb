package io.fusedopt.cpu;

import io.fusedopt.internal.GradientStatistics;
import io.fusedopt.internal.StepControl;
import io.fusedopt.internal.StepProgram;

/**
 * What both CPU step programs share: the control block lives in a Java object, the group table is
 * read afresh at every run, and a captured step is simply another run.
 */
abstract class HostStepProgram implements StepProgram {
    final StepControl control = new StepControl();
    private StatisticsExchange exchange;

    @Override
    public final void setStatisticsExchange(StatisticsExchange exchange) {
        this.exchange = exchange;
    }

    /**
     * The gradient statistics' total of the {@code count} partial sums in registration order: their
     * own ({@link GradientStatistics#totalOf}), or, when the gradient is checked and an exchange is
     * set, the exchange's, which every rank calls even with no chunk of its own.
     */
    final double total(double[] partials, int count, double[] lanes) {
        if (exchange != null && control.checkGrads) return exchange.total(partials, count);
        return GradientStatistics.totalOf(partials, count, lanes);
    }

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
