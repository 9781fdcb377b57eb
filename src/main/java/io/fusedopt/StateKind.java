package io.fusedopt;

/** The per-element state tensors an algorithm keeps, named as PyTorch names them where it has them. */
public enum StateKind {
    /** Momentum buffer b of {@link Momentum} (buffer form) and of {@link RmsProp} with momentum. */
    MOMENTUM_BUFFER("momentum_buffer"),
    /** Velocity v of {@link Momentum} in velocity form. */
    VELOCITY("velocity"),
    /** Running average of squared gradients s of {@link RmsProp}. */
    SQUARE_AVG("square_avg"),
    /** Running average of gradients of centered {@link RmsProp}. */
    GRAD_AVG("grad_avg"),
    /** First moment m of {@link Adam} (not bias-corrected). */
    EXP_AVG("exp_avg"),
    /** Second moment v of {@link Adam} (not bias-corrected). */
    EXP_AVG_SQ("exp_avg_sq"),
    /** Running maximum of v for AMSGrad. */
    MAX_EXP_AVG_SQ("max_exp_avg_sq"),
    /** Accumulated squared gradients h of {@link Adagrad}. */
    SUM("sum"),
    /** The previous step's gradient of {@link Rprop} (0 where its sign flipped). */
    PREV("prev"),
    /** The per-element step size of {@link Rprop}. */
    STEP_SIZE("step_size");

    private final String stateName;

    StateKind(String stateName) {
        this.stateName = stateName;
    }

    /** The name used in PyTorch's optimizer state dict (and in fusedopt checkpoints). */
    public String stateName() {
        return stateName;
    }
}
