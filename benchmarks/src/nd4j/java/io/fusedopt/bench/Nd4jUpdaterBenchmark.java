package io.fusedopt.bench;

import java.util.concurrent.TimeUnit;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Nesterovs;
import org.nd4j.linalg.learning.config.RmsProp;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The JVM peer: ND4J's updaters (native libnd4j ops, OpenMP on every core) on one float32 tensor,
 * one step as DL4J takes it: {@code applyUpdater} turns the gradient into the update in place,
 * then {@code params.subi(update)}. The gradient is restored before each invocation, outside the
 * timing, so every step sees the same data. Benchmark-only: built with {@code mvn -Pnd4j}.
 * The same algorithms as {@link StepBenchmark}: Adam, RMSProp (no momentum, not centered) and
 * Nesterov momentum 0.9.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class Nd4jUpdaterBenchmark {

    @Param({"adam", "rmsprop", "momentum"})
    public String algorithm;

    @Param({"16777216"})
    public int size;

    private INDArray params;
    private INDArray gradient;
    private INDArray savedGradient;
    private GradientUpdater<?> updater;
    private int iteration;

    @Setup(Level.Trial)
    public void setUp() {
        Nd4j.getRandom().setSeed(1);
        params = Nd4j.randn(DataType.FLOAT, 1, size);
        savedGradient = Nd4j.randn(DataType.FLOAT, 1, size).muli(1e-2);
        gradient = savedGradient.dup();
        IUpdater config = switch (algorithm) {
            case "adam" -> new Adam(1e-3, 0.9, 0.999, 1e-8);
            case "rmsprop" -> new RmsProp(1e-2, 0.99, 1e-8);
            case "momentum" -> new Nesterovs(1e-3, 0.9);
            default -> throw new IllegalArgumentException("unknown algorithm " + algorithm);
        };
        INDArray state = Nd4j.zeros(DataType.FLOAT, 1, config.stateSize(size));
        updater = config.instantiate(state, true);
    }

    @Setup(Level.Invocation)
    public void restoreGradient() {
        gradient.assign(savedGradient);
    }

    @Benchmark
    public INDArray step() {
        updater.applyUpdater(gradient, iteration++, 0);
        return params.subi(gradient);
    }
}
