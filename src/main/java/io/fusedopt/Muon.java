package io.fusedopt;

import io.fusedopt.internal.Check;
import java.util.List;

/**
 * Muon, momentum orthogonalized by a Newton-Schulz iteration, with {@code torch.optim.Muon}'s
 * semantics (PyTorch 2.9+, {@code torch/optim/_muon.py}; where its docstring and its code differ,
 * this follows the code: docs/muon.md).
 *
 * <p>Per 2-D parameter W (rows x cols), gradient G and momentum buffer B:
 * <pre>
 *   B  = lerp(B, G, 1 - momentum)                       an exponential average
 *   U  = nesterov ? lerp(G, B, momentum) : B
 *   X  = U transposed when rows &gt; cols, then X / max(||X||_F, eps)
 *   nsSteps times:  A = X X^T;  X = a X + (b A + c A A) X
 *   O  = X, transposed back when rows &gt; cols
 *   W  = W (1 - lr weightDecay) - lr' O                 decay with the unadjusted lr
 * </pre>
 * with lr' = lr sqrt(max(1, rows/cols)) ({@link LrAdjustment#ORIGINAL}) or
 * lr 0.2 sqrt(max(rows, cols)) ({@link LrAdjustment#MATCH_RMS_ADAMW}).
 *
 * <p>Two numerics ({@link Numerics}). {@link Numerics#EXACT} (the default): every operation above
 * in float32 with fusedopt's fixed orders (each product element accumulated over k in increasing
 * order with fused multiply-adds, the norm's sum of squares in the layer-wise norms' order), so that
 * every backend gives the same bits. {@link Numerics#FAST}: the Newton-Schulz products on cuBLAS
 * with bf16 inputs and fp32 accumulation (tensor cores), the CUDA backend only, within
 * {@link #FAST_TOLERANCE} of exact mode (docs/muon.md). A parameter must be registered with a shape of two dimensions
 * ({@link ParamGroup#add(String, TensorBuffer, TensorBuffer, long...)}); any other is refused.
 * There is no {@code maximize} (PyTorch's Muon has none): {@link Builder#optMaximize} refuses
 * {@code true}. {@link #nsSteps} and {@link #numerics} cannot change once a group has them
 * ({@link ParamGroup#setConfig} refuses: a prepared step's launches depend on them).
 *
 * <p>State: {@link StateKind#MOMENTUM_BUFFER}. Defaults follow PyTorch: lr = 1e-3,
 * weightDecay = 0.1, momentum = 0.95, nesterov on, coefficients (3.4445, -4.775, 2.0315), eps = 1e-7,
 * 5 steps, {@link LrAdjustment#ORIGINAL}.
 *
 * @param learningRate lr, &gt;= 0
 * @param weightDecay  the decoupled weight decay coefficient, &gt;= 0
 * @param momentum     the momentum factor, in [0, 1)
 * @param nesterov     whether the update is the Nesterov interpolation of the gradient and the buffer
 * @param a            the Newton-Schulz polynomial's linear coefficient, finite
 * @param b            its cubic coefficient, finite
 * @param c            its quintic coefficient, finite
 * @param eps          the floor of the Frobenius norm, &gt; 0
 * @param nsSteps      the number of Newton-Schulz iterations, in [0, {@value #MAX_NS_STEPS}]
 *                     (0 only normalizes)
 * @param lrAdjustment how the learning rate is scaled by the parameter's shape
 * @param numerics     how the Newton-Schulz products are computed
 */
public record Muon(double learningRate, double weightDecay, double momentum, boolean nesterov,
                   double a, double b, double c, double eps, int nsSteps, LrAdjustment lrAdjustment,
                   Numerics numerics) implements OptimizerConfig {

    /** The largest number of Newton-Schulz steps (PyTorch refuses 100 or more). */
    public static final int MAX_NS_STEPS = 99;

    /**
     * How far a {@link Numerics#FAST} update may be from the exact one, relative: per tensor and
     * step, {@code ||O_fast - O_exact||_F <= FAST_TOLERANCE * ||O_exact||_F} for the orthogonalized
     * matrix O of the same momentum (O is what the update scales by the adjusted learning rate).
     * bf16 rounds each product input by up to 2^-9 relative, and the iteration amplifies what that
     * does to small singular values: on Gaussian momenta of 17 to 128 rows and columns, five default
     * iterations differ by 0.020 to 0.039; the bound is over twice the worst (docs/muon.md, "Fast
     * mode"; held by the tests on the emulator's cuBLAS double and, when lent, a real GPU).
     */
    public static final double FAST_TOLERANCE = 0.1;

    /** How the Newton-Schulz products are computed. */
    public enum Numerics {
        /**
         * fusedopt's own float32 products in a fixed order: the CPU reference, CPU_FAST and CUDA
         * give the same bits. The default.
         */
        EXACT,
        /**
         * cuBLAS strided batched GEMMs, tensors of the same shape in one call, with bf16 inputs
         * (X, A and B rounded to nearest even before each product) and fp32 accumulation and
         * results, as PyTorch runs Muon on tensor cores; the normalization, the polynomial's
         * elementwise operations and the update stay exact-mode float32. CUDA only, with cuBLAS
         * ({@code io.fusedopt.cuda.CublasSupport}); a group of it is refused elsewhere, with the
         * reason. cuBLAS promises no summation order: results are held against exact mode within
         * {@link #FAST_TOLERANCE}, not bit for bit.
         */
        FAST
    }

    /** How the learning rate of a rows x cols parameter is scaled (PyTorch's {@code adjust_lr_fn}). */
    public enum LrAdjustment {
        /** {@code "original"} (Keller Jordan's): lr * sqrt(max(1, rows/cols)); PyTorch's default. */
        ORIGINAL,
        /** {@code "match_rms_adamw"} (Moonshot's): lr * 0.2 * sqrt(max(rows, cols)). */
        MATCH_RMS_ADAMW
    }

    /** Validates every value as the float32 the kernels use, naming the value refused. */
    public Muon {
        Check.learningRate(learningRate);
        Check.nonNegative("weightDecay", weightDecay);
        Check.unitInterval("momentum", momentum, false);
        Check.finite("a", a);
        Check.finite("b", b);
        Check.finite("c", c);
        Check.positive("eps", eps);
        if (nsSteps < 0 || nsSteps > MAX_NS_STEPS) {
            throw new IllegalArgumentException("nsSteps must be in [0, " + MAX_NS_STEPS + "], got " + nsSteps);
        }
        Check.notNull("lrAdjustment", lrAdjustment);
        Check.notNull("numerics", numerics);
    }

    /** Muon with PyTorch's defaults. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this configuration's values. */
    @Override
    public Builder toBuilder() {
        return new Builder().optLearningRate(learningRate).optWeightDecay(weightDecay).optMomentum(momentum)
                .optNesterov(nesterov).optNsCoefficients(a, b, c).optEps(eps).optNsSteps(nsSteps)
                .optLrAdjustment(lrAdjustment).optNumerics(numerics);
    }

    /**
     * This configuration with another learning rate.
     *
     * @param lr the new learning rate, &gt;= 0
     * @return the new configuration
     */
    @Override
    public Muon withLearningRate(double lr) {
        return toBuilder().optLearningRate(lr).build();
    }

    /** {@code "muon"}. */
    @Override
    public String algorithm() {
        return "muon";
    }

    /** The per-element state: the momentum buffer. */
    @Override
    public List<StateKind> stateKinds() {
        return List.of(StateKind.MOMENTUM_BUFFER);
    }

    /** Builder; every value is optional. */
    public static final class Builder implements OptimizerConfig.Builder {
        private double learningRate = 1e-3;
        private double weightDecay = 0.1;
        private double momentum = 0.95;
        private boolean nesterov = true;
        private double a = 3.4445;
        private double b = -4.7750;
        private double c = 2.0315;
        private double eps = 1e-7;
        private int nsSteps = 5;
        private LrAdjustment lrAdjustment = LrAdjustment.ORIGINAL;
        private Numerics numerics = Numerics.EXACT;
        private boolean maximize;

        private Builder() {}

        /** The learning rate lr (default 1e-3). */
        @Override
        public Builder optLearningRate(double v) { learningRate = v; return this; }
        /** The decoupled weight decay coefficient (default 0.1). */
        @Override
        public Builder optWeightDecay(double v) { weightDecay = v; return this; }
        /** Muon has no maximize (PyTorch's has none): {@link #build} refuses {@code true}. */
        @Override
        public Builder optMaximize(boolean v) { maximize = v; return this; }
        /** The momentum factor (default 0.95). */
        public Builder optMomentum(double v) { momentum = v; return this; }
        /** Nesterov's interpolation (default true). */
        public Builder optNesterov(boolean v) { nesterov = v; return this; }
        /**
         * The Newton-Schulz coefficients (default (3.4445, -4.775, 2.0315)).
         *
         * @param a the linear coefficient
         * @param b the cubic coefficient
         * @param c the quintic coefficient
         * @return this builder
         */
        public Builder optNsCoefficients(double a, double b, double c) {
            this.a = a;
            this.b = b;
            this.c = c;
            return this;
        }
        /** The floor of the Frobenius norm (default 1e-7). */
        public Builder optEps(double v) { eps = v; return this; }
        /** The number of Newton-Schulz steps (default 5). */
        public Builder optNsSteps(int v) { nsSteps = v; return this; }
        /** The learning-rate adjustment (default {@link LrAdjustment#ORIGINAL}). */
        public Builder optLrAdjustment(LrAdjustment v) { lrAdjustment = v; return this; }
        /** How the Newton-Schulz products are computed (default {@link Numerics#EXACT}; {@link Numerics#FAST}: CUDA with cuBLAS only). */
        public Builder optNumerics(Numerics v) { numerics = v; return this; }

        /**
         * The configuration, validated.
         *
         * @throws IllegalArgumentException for a value out of its domain (named), or maximize
         */
        @Override
        public Muon build() {
            if (maximize) throw new IllegalArgumentException("Muon has no maximize option (torch.optim.Muon has none): negate the loss instead");
            return new Muon(learningRate, weightDecay, momentum, nesterov, a, b, c, eps, nsSteps, lrAdjustment, numerics);
        }
    }
}
