package io.fusedopt.cli;

import io.fusedopt.Adagrad;
import io.fusedopt.Adam;
import io.fusedopt.Momentum;
import io.fusedopt.OptimizerConfig;
import io.fusedopt.RmsProp;
import io.fusedopt.Sgd;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every algorithm variant the library implements, by name: what {@code selftest} runs and what the
 * equivalence tests run over. Each flag of every kernel is on in at least one variant.
 */
public final class VariantCatalog {
    private VariantCatalog() {}

    /** The algorithms benchmarks measure, by name, each with its defaults (momentum: Nesterov, 0.9). */
    public static final List<String> BENCHMARK_ALGORITHMS = List.of("adam", "adamw", "rmsprop", "momentum", "sgd", "adagrad");

    /** The configuration {@code bench} and the JMH benchmarks measure for an algorithm name. */
    public static OptimizerConfig benchmarkConfig(String algorithm) {
        return switch (algorithm) {
            case "adam" -> Adam.builder().build();
            case "adamw" -> Adam.adamW().build();
            case "rmsprop" -> RmsProp.builder().build();
            case "momentum" -> Momentum.builder().setMomentum(0.9).optNesterov(true).build();
            case "sgd" -> Sgd.builder().build();
            case "adagrad" -> Adagrad.builder().build();
            default -> throw new IllegalArgumentException("unknown algorithm '" + algorithm + "'; known: " + BENCHMARK_ALGORITHMS);
        };
    }

    /** Every variant, in a fixed order, by a name such as "adamw-amsgrad-step-size". */
    public static Map<String, OptimizerConfig> all() {
        Map<String, OptimizerConfig> v = new LinkedHashMap<>();
        v.put("sgd", Sgd.builder().optLearningRate(0.05).build());
        v.put("sgd-l2", Sgd.builder().optLearningRate(0.05).optWeightDecay(0.01).build());
        v.put("sgd-maximize", Sgd.builder().optLearningRate(0.05).optMaximize(true).build());

        Momentum.Builder m = Momentum.builder().optLearningRate(0.05).setMomentum(0.9);
        v.put("momentum-buffer", m.build());
        v.put("momentum-buffer-dampening", m.optDampening(0.3).build());
        v.put("momentum-buffer-nesterov-l2", m.optDampening(0).optNesterov(true).optWeightDecay(0.01).build());
        v.put("momentum-velocity", Momentum.builder().optLearningRate(0.05).setMomentum(0.9).optForm(Momentum.Form.VELOCITY).build());
        v.put("momentum-velocity-nesterov-maximize", Momentum.builder().optLearningRate(0.05).setMomentum(0.8)
                .optForm(Momentum.Form.VELOCITY).optNesterov(true).optMaximize(true).optWeightDecay(0.01).build());

        RmsProp.Builder r = RmsProp.builder().optLearningRate(0.01);
        v.put("rmsprop", r.build());
        v.put("rmsprop-centered", r.optCentered(true).build());
        v.put("rmsprop-momentum", RmsProp.builder().optLearningRate(0.01).optMomentum(0.9).build());
        v.put("rmsprop-centered-momentum-l2", RmsProp.builder().optLearningRate(0.01).optCentered(true).optMomentum(0.5)
                .optWeightDecay(0.01).build());
        v.put("rmsprop-maximize", RmsProp.builder().optLearningRate(0.01).optAlpha(0.9).optMaximize(true).build());

        v.put("adam", Adam.builder().optLearningRate(1e-2).build());
        v.put("adam-step-size", Adam.builder().optLearningRate(1e-2).optForm(Adam.Form.STEP_SIZE).build());
        v.put("adam-amsgrad", Adam.builder().optLearningRate(1e-2).optAmsgrad(true).build());
        v.put("adam-l2", Adam.builder().optLearningRate(1e-2).optWeightDecay(0.05).build());
        v.put("adamw", Adam.adamW().optLearningRate(1e-2).build());
        v.put("adam-maximize", Adam.builder().optLearningRate(1e-2).optMaximize(true).build());
        v.put("adamw-amsgrad-step-size", Adam.adamW().optLearningRate(1e-2).optAmsgrad(true)
                .optForm(Adam.Form.STEP_SIZE).optBetas(0.8, 0.99).optEpsilon(1e-6).build());

        v.put("adagrad", Adagrad.builder().optLearningRate(0.05).build());
        v.put("adagrad-decay-initial", Adagrad.builder().optLearningRate(0.05).optLrDecay(0.1)
                .optInitialAccumulatorValue(0.1).build());
        v.put("adagrad-l2-maximize", Adagrad.builder().optLearningRate(0.05).optWeightDecay(0.01).optMaximize(true).build());
        return v;
    }
}
