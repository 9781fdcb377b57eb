package io.fusedopt;

/**
 * The state tensors an algorithm keeps, named as PyTorch names them where it has them: one value per
 * element of the parameter, except {@link #ROW_VAR} and {@link #COL_VAR}, one per row and per
 * column.
 */
public enum StateKind {
    /** Momentum buffer b of {@link Momentum} (buffer form) and of {@link RmsProp} with momentum. */
    MOMENTUM_BUFFER("momentum_buffer"),
    /** Velocity v of {@link Momentum} in velocity form. */
    VELOCITY("velocity"),
    /** Running average of squared gradients s of {@link RmsProp} and of {@link Adadelta}. */
    SQUARE_AVG("square_avg"),
    /** Running average of gradients of centered {@link RmsProp}. */
    GRAD_AVG("grad_avg"),
    /** First moment m of {@link Adam} and {@link Adamax} (not bias-corrected). */
    EXP_AVG("exp_avg"),
    /** Second moment v of {@link Adam} (not bias-corrected). */
    EXP_AVG_SQ("exp_avg_sq"),
    /** Running maximum of v for AMSGrad. */
    MAX_EXP_AVG_SQ("max_exp_avg_sq"),
    /** Accumulated squared gradients h of {@link Adagrad}. */
    SUM("sum"),
    /** Exponentially weighted infinity norm u of {@link Adamax}. */
    EXP_INF("exp_inf"),
    /** Running average of squared updates of {@link Adadelta}. */
    ACC_DELTA("acc_delta"),
    /** Averaged parameter ax of {@link Asgd}. */
    AX("ax"),
    /** The previous step's gradient of {@link Rprop} (0 where its sign flipped). */
    PREV("prev"),
    /** The per-element step size of {@link Rprop}. */
    STEP_SIZE("step_size"),
    /** The fast EMA m1 of {@link AdEMAMix}, bitsandbytes' name (its first moment, decay beta1). */
    M1("m1"),
    /** The slow EMA m2 of {@link AdEMAMix}, bitsandbytes' name (decay beta3, or its warm-up). */
    M2("m2"),
    /** The second moment nu of {@link AdEMAMix}, bitsandbytes' name (decay beta2). */
    NU("nu"),
    /**
     * The second-moment estimate of a one-dimensional parameter of {@link Adafactor}, one value per
     * element (a parameter of rank &gt;= 2 keeps {@link #ROW_VAR} and {@link #COL_VAR} instead).
     */
    VARIANCE("variance"),
    /**
     * The row factor of {@link Adafactor}'s second moment of a parameter of shape
     * [..., R, C]: one value per row of each matrix of the last two dimensions, shape [..., R, 1].
     */
    ROW_VAR("row_var"),
    /** The column factor of {@link Adafactor}'s second moment: one value per column, shape [..., 1, C]. */
    COL_VAR("col_var");

    private final String stateName;

    StateKind(String stateName) {
        this.stateName = stateName;
    }

    /** The name used in PyTorch's optimizer state dict (and in fusedopt checkpoints). */
    public String stateName() {
        return stateName;
    }
}
