package io.fusedopt;

import io.fusedopt.internal.AbstractTensorBuffer;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdatePlan;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parameter tensors that share one configuration (hyper-parameters) within a
 * {@link DeviceOptimizer}. Created by {@link DeviceOptimizer#addGroup}; its methods are serialized
 * with the optimizer's.
 */
public final class ParamGroup {
    private final DeviceOptimizer optimizer;
    private final int index;
    private final List<Parameter> parameters = new ArrayList<>();
    private OptimizerConfig config;
    private UpdatePlan plan;
    /** Refreshed before every step and read by every prepared update of this group. */
    private final float[] scalars;
    private final int[] flags = new int[1];

    ParamGroup(DeviceOptimizer optimizer, int index, OptimizerConfig config) {
        this.optimizer = optimizer;
        this.index = index;
        this.config = config;
        this.plan = UpdatePlan.of(config);
        this.scalars = new float[plan.kernel().scalarCount()];
    }

    /** The position of this group in {@link DeviceOptimizer#groups()}. */
    public int index() {
        return index;
    }

    public OptimizerConfig config() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return config;
        }
    }

    /**
     * Replaces this group's hyper-parameters from the next step on (a schedule needs no rebuild).
     * The new configuration must keep the same state tensors: for example AMSGrad, centered
     * RMSProp, RMSProp momentum on/off and the momentum form cannot change once tensors exist.
     */
    public void setConfig(OptimizerConfig newConfig) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            optimizer.requireSameAlgorithm(newConfig);
            UpdatePlan newPlan = UpdatePlan.of(newConfig);
            if (newPlan.kernel() != plan.kernel() || !Arrays.equals(newPlan.slots(), plan.slots())) {
                throw new IllegalArgumentException("the new configuration keeps the state tensors "
                        + newConfig.stateKinds() + " with kernel " + newPlan.kernel() + ", but this group keeps "
                        + config.stateKinds() + " with kernel " + plan.kernel() + "; only hyper-parameters may change");
            }
            config = newConfig;
            plan = newPlan;
        }
    }

    /** Shorthand for {@code setConfig(config().withLearningRate(learningRate))}. */
    public void setLearningRate(double learningRate) {
        synchronized (optimizer) {
            setConfig(config().withLearningRate(learningRate));
        }
    }

    /** The parameters in the order they were added. */
    public List<Parameter> parameters() {
        synchronized (optimizer) {
            optimizer.ensureOpen();
            return List.copyOf(parameters);
        }
    }

    /**
     * Registers a tensor: {@code param} is updated in place from {@code grad} at every step. Both
     * must come from this optimizer (allocated or wrapped), have the same length, and not back any
     * other registered tensor. The state tensors are allocated here, set to their initial values.
     * Allowed only before the first step.
     *
     * @throws IllegalArgumentException for a bad name or buffer; nothing is registered then
     */
    public Parameter add(String name, TensorBuffer param, TensorBuffer grad) {
        synchronized (optimizer) {
            optimizer.ensureUsable();
            optimizer.requireNoStepTaken("register a tensor");
            AbstractTensorBuffer p = optimizer.ownBuffer("param", param);
            AbstractTensorBuffer g = optimizer.ownBuffer("grad", grad);
            if (p == g) throw new IllegalArgumentException("param and grad must be different buffers");
            if (p.length() != g.length()) {
                throw new IllegalArgumentException("param '" + name + "' has " + p.length() + " elements but its grad has "
                        + g.length());
            }
            requireUnregistered("param", p);
            requireUnregistered("grad", g);
            optimizer.claimName(name);
            Map<StateKind, AbstractTensorBuffer> states = new LinkedHashMap<>(); // in config.stateKinds() order
            try {
                for (StateKind kind : config.stateKinds()) {
                    states.put(kind, optimizer.engine().allocate(p.length(), UpdatePlan.initialValue(config, kind)));
                }
            } catch (RuntimeException e) {
                states.values().forEach(AbstractTensorBuffer::close);
                optimizer.releaseName(name);
                throw e;
            }
            p.markRegistered("param '" + name + "'");
            g.markRegistered("grad of '" + name + "'");
            states.forEach((kind, s) -> s.markRegistered(kind.stateName() + " of '" + name + "'"));
            Parameter parameter = new Parameter(optimizer, this, name, p, g, states);
            parameters.add(parameter);
            optimizer.tensorsChanged();
            return parameter;
        }
    }

    private static void requireUnregistered(String role, AbstractTensorBuffer buffer) {
        if (buffer.registeredAs() != null) {
            throw new IllegalArgumentException(role + " buffer already backs " + buffer.registeredAs()
                    + "; a buffer can back only one registered tensor");
        }
    }

    /** Computes this group's scalars and flags for step {@code step}. */
    void prepareStep(long step) {
        StepScalars.compute(config, step, scalars);
        flags[0] = plan.flagsForStep(step);
    }

    /** The kernel this group's tensors run, and its state slots. */
    UpdatePlan plan() {
        return plan;
    }

    /** The scalars of the coming step; the prepared launches read this array. */
    float[] scalars() {
        return scalars;
    }

    /** The flags of the coming step, in one cell; the prepared launches read it. */
    int[] flags() {
        return flags;
    }

    List<Parameter> parameterList() {
        return parameters;
    }
}
