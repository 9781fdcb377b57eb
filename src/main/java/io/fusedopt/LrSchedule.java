package io.fusedopt;

import io.fusedopt.internal.Check;
import io.fusedopt.internal.LrSegments;
import io.fusedopt.internal.LrSegments.Segment;
import java.util.ArrayList;
import java.util.List;

/**
 * A learning-rate schedule: a factor of a group's learning rate as a function of the scheduler
 * step {@code n}, as PyTorch's {@code LambdaLR} (and {@code SequentialLR} for {@link #sequence}).
 * Attach it with {@link ParamGroup#setSchedule}; the step with counter {@code t} (1, 2, ...) then
 * uses the learning rate {@code float32(lr * factorAt(t - 1))}, where {@code lr} is the group's
 * float32 learning rate: {@code n} counts the steps applied before this one, as PyTorch's
 * {@code scheduler.step()} called after each applied {@code optimizer.step()}. Steps skipped for a
 * non-finite gradient do not advance it, unless the optimizer counts iterations
 * ({@link ScheduleClock#ITERATIONS}): then {@code n} counts every step taken before this one, as
 * PyTorch's usual loop that calls {@code scheduler.step()} every iteration.
 *
 * <p>The factor is computed in double by one written formula per kind (README "Formulas"), on the
 * host by the CPU backends and on the device by the finalize kernel, with the same IEEE operations
 * in the same order: both backends get the same bits, and a step replayed from a captured graph
 * follows the schedule. Cosines use fusedopt's own polynomial {@code cospi} (within 5e-16 of the
 * exact value), never {@code Math.cos} or CUDA's {@code cos}, which differ in the last bit.
 *
 * <p>Every factory validates its arguments (finite, non-negative factors; positive lengths; a
 * warmup no longer than the total): a schedule never gives a negative or non-finite learning rate.
 * Once a schedule has run past its last phase it holds its final factor (PyTorch's
 * {@code CosineAnnealingLR} would climb back; {@code OneCycleLR} would throw).
 */
public final class LrSchedule {
    private final LrSegments segments;

    private LrSchedule(List<Segment> list) {
        this.segments = new LrSegments(list);
    }

    private LrSchedule(LrSegments segments) {
        this.segments = segments;
    }

    /** Factor 1 at every step: the group's learning rate unchanged. */
    public static LrSchedule constant() {
        return constant(1.0);
    }

    /** The same factor at every step. */
    public static LrSchedule constant(double factor) {
        requireFactor("factor", factor);
        return new LrSchedule(List.of(segment(LrSegments.CONSTANT, 0, 0, 0, 0, factor, 0)));
    }

    /** PyTorch's {@code ConstantLR}: {@code factor} for the first {@code steps} steps, then 1. */
    public static LrSchedule constant(double factor, long steps) {
        requireFactor("factor", factor);
        requireSteps("steps", steps);
        return new LrSchedule(List.of(segment(LrSegments.CONSTANT, 0, 0, 0, 0, factor, 0),
                segment(LrSegments.CONSTANT, steps, 0, 0, 0, 1.0, 0)));
    }

    /**
     * PyTorch's {@code LinearLR} (closed form): {@code start + (end - start) * min(n, steps) / steps},
     * then {@code end}.
     */
    public static LrSchedule linear(double startFactor, double endFactor, long steps) {
        requireFactor("startFactor", startFactor);
        requireFactor("endFactor", endFactor);
        requireSteps("steps", steps);
        return new LrSchedule(List.of(segment(LrSegments.LINEAR, 0, steps, 0, 0, startFactor, endFactor)));
    }

    /** Linear warmup from 0 to 1 over {@code warmupSteps} steps ({@code n / warmupSteps}), then 1. */
    public static LrSchedule linearWarmup(long warmupSteps) {
        return linear(0.0, 1.0, warmupSteps);
    }

    /** Linear decay from 1 to {@code endFactor} over {@code steps} steps, then {@code endFactor}. */
    public static LrSchedule linearDecay(long steps, double endFactor) {
        return linear(1.0, endFactor, steps);
    }

    /**
     * Cosine annealing ({@code CosineAnnealingLR}, closed form, with {@code eta_min = floor * lr}):
     * {@code floor + (1 - floor) * (1 + cos(pi * min(n, steps) / steps)) / 2}, then {@code floor}.
     */
    public static LrSchedule cosine(long steps, double floorFactor) {
        requireFactor("floorFactor", floorFactor);
        requireSteps("steps", steps);
        return new LrSchedule(List.of(segment(LrSegments.COSINE, 0, steps, 0, 0, 1.0, floorFactor)));
    }

    /**
     * Linear warmup from 0 to 1 over {@code warmupSteps}, then cosine annealing from 1 to
     * {@code floorFactor} over the remaining {@code totalSteps - warmupSteps} steps, then the floor
     * (Hugging Face's {@code get_cosine_schedule_with_warmup} with a floor).
     *
     * @throws IllegalArgumentException when the warmup is negative or not shorter than the total
     *     (the cosine phase needs at least one step: a warmup as long as the total would drop from
     *     1 straight to the floor), or any other argument is out of range
     */
    public static LrSchedule cosineWithWarmup(long warmupSteps, long totalSteps, double floorFactor) {
        requireFactor("floorFactor", floorFactor);
        requireSteps("totalSteps", totalSteps);
        if (warmupSteps < 0 || warmupSteps >= totalSteps) {
            throw new IllegalArgumentException("warmupSteps must be in [0, totalSteps - 1] (the cosine phase needs at least one"
                    + " step), got warmup " + warmupSteps + " of a total of " + totalSteps);
        }
        List<Segment> list = new ArrayList<>();
        if (warmupSteps > 0) list.add(segment(LrSegments.LINEAR, 0, warmupSteps, 0, 0, 0.0, 1.0));
        list.add(segment(LrSegments.COSINE, warmupSteps, totalSteps - warmupSteps, 0, 0, 1.0, floorFactor));
        return new LrSchedule(list);
    }

    /** PyTorch's {@code StepLR}: {@code gamma^(n / stepSize)} (integer division). */
    public static LrSchedule step(long stepSize, double gamma) {
        requireFactor("gamma", gamma);
        requireSteps("stepSize", stepSize);
        return new LrSchedule(List.of(segment(LrSegments.POWER, 0, 0, stepSize, 0, 1.0, gamma)));
    }

    /**
     * PyTorch's {@code MultiStepLR}: {@code gamma^k} after the k-th milestone. Milestones must be
     * positive and strictly increasing (at most 31 of them).
     */
    public static LrSchedule multiStep(double gamma, long... milestones) {
        requireFactor("gamma", gamma);
        Check.notNull("milestones", milestones);
        if (milestones.length + 1 > LrSegments.MAX_SEGMENTS) {
            throw new IllegalArgumentException("at most " + (LrSegments.MAX_SEGMENTS - 1) + " milestones, got " + milestones.length);
        }
        List<Segment> list = new ArrayList<>();
        list.add(segment(LrSegments.CONSTANT, 0, 0, 0, 0, 1.0, 0));
        long previous = 0;
        for (int k = 0; k < milestones.length; k++) {
            if (milestones[k] <= previous) {
                throw new IllegalArgumentException("milestones must be positive and strictly increasing, got " + milestones[k]
                        + (k == 0 ? "" : " after " + previous));
            }
            previous = milestones[k];
            // gamma^(k+1), computed once here; the device reads the same double.
            list.add(segment(LrSegments.CONSTANT, milestones[k], 0, 0, 0,
                    io.fusedopt.internal.StepScalars.powerBySquaring(gamma, k + 1), 0));
        }
        return new LrSchedule(list);
    }

    /** PyTorch's {@code ExponentialLR}: {@code gamma^n}, with {@code gamma} in [0, 1]. */
    public static LrSchedule exponential(double gamma) {
        return step(1, gamma);
    }

    /**
     * PyTorch's {@code PolynomialLR} (closed form), with an end factor:
     * {@code end + (1 - end) * (1 - min(n, steps) / steps)^power}. The power is an integer, so that
     * it is computed by multiplications only.
     */
    public static LrSchedule polynomial(long steps, int power, double endFactor) {
        requireSteps("steps", steps);
        requireFactor("endFactor", endFactor);
        if (power < 0 || power > LrSegments.MAX_POWER) {
            throw new IllegalArgumentException("power must be in [0, " + LrSegments.MAX_POWER + "], got " + power);
        }
        return new LrSchedule(List.of(segment(LrSegments.POLYNOMIAL, 0, steps, 0, power, 1.0, endFactor)));
    }

    /**
     * PyTorch's {@code OneCycleLR} with cosine annealing, the group's learning rate being
     * {@code max_lr}: from {@code 1/divFactor} up to 1 over {@code round(pctStart * totalSteps) - 1}
     * steps, then down to {@code 1/(divFactor * finalDivFactor)} at step {@code totalSteps - 1}, and
     * held there. PyTorch's defaults are {@code pctStart 0.3, divFactor 25, finalDivFactor 1e4}.
     */
    public static LrSchedule oneCycle(long totalSteps, double pctStart, double divFactor, double finalDivFactor) {
        requireSteps("totalSteps", totalSteps);
        if (!(pctStart > 0 && pctStart < 1)) throw new IllegalArgumentException("pctStart must be in (0, 1), got " + pctStart);
        if (!(divFactor >= 1) || Double.isInfinite(divFactor)) {
            throw new IllegalArgumentException("divFactor must be finite and >= 1, got " + divFactor);
        }
        if (!(finalDivFactor >= 1) || Double.isInfinite(finalDivFactor)) {
            throw new IllegalArgumentException("finalDivFactor must be finite and >= 1, got " + finalDivFactor);
        }
        long up = Math.round(pctStart * totalSteps) - 1;   // PyTorch's first phase ends at pct_start * total - 1
        long down = totalSteps - 1 - up;
        if (up < 1 || down < 1) {
            throw new IllegalArgumentException("oneCycle needs at least one step up and one down: pctStart " + pctStart + " of "
                    + totalSteps + " steps gives " + up + " up and " + down + " down");
        }
        double initial = 1.0 / divFactor;
        double last = initial / finalDivFactor;
        return new LrSchedule(List.of(segment(LrSegments.COSINE, 0, up, 0, 0, initial, 1.0),
                segment(LrSegments.COSINE, up, down, 0, 0, 1.0, last)));
    }

    /**
     * PyTorch's {@code CosineAnnealingWarmRestarts}: cosine annealing from 1 to
     * {@code floorFactor} over cycles of {@code firstCycle}, {@code firstCycle * cycleMultiplier},
     * ... steps, restarting at 1 at each cycle's start.
     */
    public static LrSchedule warmRestarts(long firstCycle, int cycleMultiplier, double floorFactor) {
        requireSteps("firstCycle", firstCycle);
        requireFactor("floorFactor", floorFactor);
        if (cycleMultiplier < 1 || cycleMultiplier > LrSegments.MAX_POWER) {
            throw new IllegalArgumentException("cycleMultiplier must be in [1, " + LrSegments.MAX_POWER + "], got " + cycleMultiplier);
        }
        return new LrSchedule(List.of(segment(LrSegments.RESTARTS, 0, 0, firstCycle, cycleMultiplier, 1.0, floorFactor)));
    }

    /**
     * PyTorch's {@code SequentialLR}: {@code schedules[0]} until {@code milestones[0]}, then
     * {@code schedules[1]} counted from 0 again, and so on. {@code milestones} has one fewer
     * element than {@code schedules}, positive and strictly increasing; at most 32 segments in all.
     */
    public static LrSchedule sequence(List<LrSchedule> schedules, long... milestones) {
        Check.notNull("schedules", schedules);
        Check.notNull("milestones", milestones);
        if (schedules.isEmpty()) throw new IllegalArgumentException("sequence needs at least one schedule");
        if (milestones.length != schedules.size() - 1) {
            throw new IllegalArgumentException("sequence of " + schedules.size() + " schedules needs " + (schedules.size() - 1)
                    + " milestones, got " + milestones.length);
        }
        List<Segment> list = new ArrayList<>();
        long previous = 0;
        for (int i = 0; i < schedules.size(); i++) {
            LrSchedule s = schedules.get(i);
            if (s == null) throw new IllegalArgumentException("schedule " + i + " of the sequence is null");
            long offset = i == 0 ? 0 : milestones[i - 1];
            if (i > 0 && offset <= previous) {
                throw new IllegalArgumentException("milestones must be positive and strictly increasing, got " + offset
                        + (i == 1 ? "" : " after " + previous));
            }
            previous = offset;
            long end = i + 1 < schedules.size() ? milestones[i] : Long.MAX_VALUE;
            for (Segment seg : s.segments.segments()) {
                if (offset + seg.start() >= end) break; // a phase the next schedule replaces before it starts
                list.add(new Segment(seg.kind(), offset + seg.start(), seg.length(), seg.period(), seg.power(), seg.a(), seg.b()));
            }
        }
        if (list.size() > LrSegments.MAX_SEGMENTS) {
            throw new IllegalArgumentException("the sequence has " + list.size() + " segments; a schedule holds at most "
                    + LrSegments.MAX_SEGMENTS);
        }
        return new LrSchedule(list);
    }

    /** The factor of scheduler step {@code n >= 0} (the step with counter t = n + 1 uses it). */
    public double factorAt(long n) {
        return segments.factorAt(n);
    }

    /**
     * The float32 learning rate the step with counter {@code t = n + 1} uses in a group whose
     * learning rate is {@code learningRate}: {@code float32(float32(learningRate) * factorAt(n))}.
     */
    public float learningRateAt(double learningRate, long n) {
        return LrSegments.scheduledLr((float) learningRate, segments, n);
    }

    /** The schedule as the kernels hold it. */
    LrSegments segments() {
        return segments;
    }

    /** The schedule a checkpoint stored ({@link LrSegments#toText()}). */
    static LrSchedule fromText(String text) {
        return new LrSchedule(LrSegments.fromText(text));
    }

    String toText() {
        return segments.toText();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LrSchedule other && segments.equals(other.segments);
    }

    @Override
    public int hashCode() {
        return segments.hashCode();
    }

    /** The segments: {@code kind,start,length,period,power,a,b} separated by {@code ;}. */
    @Override
    public String toString() {
        return "LrSchedule[" + segments.toText() + "]";
    }

    private static Segment segment(int kind, long start, long length, long period, int power, double a, double b) {
        return new Segment(kind, start, length, period, power, a, b);
    }

    private static void requireFactor(String name, double v) {
        if (!(v >= 0) || Double.isInfinite(v)) throw new IllegalArgumentException(name + " must be finite and >= 0, got " + v);
    }

    private static void requireSteps(String name, long v) {
        if (v < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    }
}
