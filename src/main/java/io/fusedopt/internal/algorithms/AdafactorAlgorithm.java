package io.fusedopt.internal.algorithms;

import static io.fusedopt.internal.KernelFlags.MAXIMIZE;
import static io.fusedopt.internal.KernelFlags.has;
import static io.fusedopt.internal.StepScalars.H_FIRST_OWN;
import static io.fusedopt.internal.StepScalars.H_WEIGHT_DECAY;

import io.fusedopt.Adafactor;
import io.fusedopt.StateKind;
import io.fusedopt.internal.Algorithm;
import io.fusedopt.internal.FactoredKernel;
import io.fusedopt.internal.StepScalars;
import io.fusedopt.internal.UpdateKernel;
import io.fusedopt.internal.UpdatePlan;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link Adafactor}: kernels/adafactor.cu, a factored kernel (whole tensors, {@link FactoredKernel}).
 * The formulas are {@link Adafactor}'s Javadoc; this is their float32 form.
 */
public final class AdafactorAlgorithm extends Algorithm<Adafactor> {
    static final int H_BETA2_DECAY = H_FIRST_OWN, H_EPS1 = H_FIRST_OWN + 1, H_EPS2 = H_FIRST_OWN + 2, H_D = H_FIRST_OWN + 3;
    // struct AdafactorScalars
    public static final int WEIGHT = 0, ONE_MINUS_WEIGHT = 1, RHO = 2, DECAY = 3, EPS1 = 4, EPS1_SQUARED = 5, EPS2 = 6, D = 7,
            COUNT = 8;
    /** The state slots: a vector's variance, a matrix's row and column factors. */
    static final StateKind[] SLOTS = {StateKind.VARIANCE, StateKind.ROW_VAR, StateKind.COL_VAR};

    static final UpdateKernel KERNEL = new Kernel();

    public AdafactorAlgorithm() {
        super(Adafactor.class);
    }

    @Override
    public List<UpdateKernel> kernels() {
        return List.of(KERNEL);
    }

    @Override
    public UpdatePlan plan(Adafactor c) {
        return new UpdatePlan(KERNEL, SLOTS.clone(), c.maximize() ? MAXIMIZE : 0);
    }

    /** torch's: {@code variance} for a vector, {@code row_var} and {@code col_var} for rank &gt;= 2. */
    @Override
    public List<StateKind> stateKinds(Adafactor config, long[] shape) {
        return shape.length >= 2 ? List.of(StateKind.ROW_VAR, StateKind.COL_VAR) : List.of(StateKind.VARIANCE);
    }

    /** torch's keepdim shapes: row_var [..., R, 1], col_var [..., 1, C]. */
    @Override
    public long[] stateShape(StateKind kind, long[] shape) {
        long[] s = shape.clone();
        if (kind == StateKind.ROW_VAR) s[s.length - 1] = 1;
        if (kind == StateKind.COL_VAR) s[s.length - 2] = 1;
        return s;
    }

    @Override
    protected void ownHyperParameters(Adafactor c, float[] h) {
        h[H_BETA2_DECAY] = (float) c.beta2Decay();
        h[H_EPS1] = (float) c.eps1();
        h[H_EPS2] = (float) c.eps2();
        h[H_D] = (float) c.d();
    }

    @Override
    protected double weightDecay(Adafactor c) {
        return c.weightDecay();
    }

    @Override
    public Map<String, Adafactor> variants() {
        Map<String, Adafactor> v = new LinkedHashMap<>();
        v.put("adafactor", Adafactor.builder().build());
        // rho = min(lr, 1/sqrt t) switches from lr to 1/sqrt t at t = 5; V floored at eps1^2 where G is small.
        v.put("adafactor-decay-maximize", Adafactor.builder().optLearningRate(0.2).optBeta2Decay(-0.5).optEps(1e-6, 1e-2)
                .optD(1.5).optWeightDecay(0.1).optMaximize(true).build());
        return v;
    }

    @Override
    public Map<String, Adafactor> benchmarkConfigs() {
        return Map.of("adafactor", Adafactor.builder().build());
    }

    /** Shazeer and Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost" (arXiv:1804.04235). */
    @Override
    public int publicationYear() {
        return 2018;
    }

    /** torch's lerp(a, b, w): a + w(b - a) for |w| &lt; 0.5, else b - (b - a)(1 - w), each one FMA. */
    static float lerp(float a, float b, float w, float oneMinusW) {
        float diff = b - a;
        return Math.abs(w) < 0.5f ? Math.fma(w, diff, a) : Math.fma(-diff, oneMinusW, b);
    }

    private static final class Kernel extends FactoredKernel {
        Kernel() {
            super("ADAFACTOR", "adafactor", "fusedopt_adafactor", COUNT);
        }

        /**
         * weight = t^beta2Decay and rho = min(lr, 1/sqrt t), in double, rounded once; 1 - weight from
         * the rounded weight (exact where the lerp uses it, weight &gt;= 0.5, as torch's float
         * {@code 1 - weight}); decay = 1 - lr*weightDecay; eps1^2 in double, rounded once.
         */
        @Override
        public void scalars(float[] hyper, int h, float lrF, int flags, long step, float[] out, int o) {
            float weight = (float) StepScalars.pow(step, hyper[h + H_BETA2_DECAY]);
            double eps1 = hyper[h + H_EPS1];
            out[o + WEIGHT] = weight;
            out[o + ONE_MINUS_WEIGHT] = (float) (1.0 - weight);
            out[o + RHO] = (float) Math.min(lrF, 1.0 / Math.sqrt(step));
            out[o + DECAY] = (float) (1.0 - (double) lrF * hyper[h + H_WEIGHT_DECAY]);
            out[o + EPS1] = hyper[h + H_EPS1];
            out[o + EPS1_SQUARED] = (float) (eps1 * eps1);
            out[o + EPS2] = hyper[h + H_EPS2];
            out[o + D] = hyper[h + H_D];
        }

        /**
         * G = maximize ? -g : g; the factors (rank &gt;= 2) or the variance (a vector) from G; the
         * per-element update u = G / sqrt(max(V, eps1^2)); then, from RMS(p) (before the decay) and
         * RMS(u), the step size -alpha / max(1, RMS(u)/d) with alpha = max(eps2, RMS(p)) * rho, in
         * double, rounded once; p = fma(stepSize, u, p * decay).
         */
        @Override
        public void step(Tensor t, float[] s, int flags) {
            int n = t.length;
            float[] p = t.param, g = t.grad, u = t.update;
            if (has(flags, MAXIMIZE)) for (int k = 0; k < n; k++) g[k] = -g[k];
            double paramSquares = sumOfSquares(p, t);
            if (t.factored()) {
                factoredUpdate(t, s);
            } else {
                float[] variance = t.slots[0];
                float w = s[WEIGHT], oneMinusW = s[ONE_MINUS_WEIGHT], eps1Squared = s[EPS1_SQUARED];
                for (int k = 0; k < n; k++) {
                    float v = lerp(variance[k], g[k] * g[k], w, oneMinusW);
                    variance[k] = v;
                    u[k] = g[k] / (float) Math.sqrt(Math.max(v, eps1Squared)); // Math.max propagates NaN, as torch's clamp
                }
            }
            double updateSquares = sumOfSquares(u, t);
            double alpha = Math.max(s[EPS2], Math.sqrt(paramSquares / n)) * s[RHO];
            float stepSize = (float) (-alpha / Math.max(1.0, Math.sqrt(updateSquares / n) / s[D]));
            float decay = s[DECAY];
            for (int k = 0; k < n; k++) p[k] = Math.fma(stepSize, u[k], p[k] * decay);
        }

        /**
         * Per matrix: each row's and column's mean of G^2 (its sum in double, divided in double,
         * rounded once) into the factors by lerp, each stored (a 16-bit state rounded) before it is
         * used; the stored row factors' mean, floored at eps1; then V_ij = r_i * c_j / mean and u_ij.
         */
        private static void factoredUpdate(Tensor t, float[] s) {
            float[] g = t.grad, u = t.update, rowVar = t.slots[1], colVar = t.slots[2];
            int rows = t.rows, cols = t.cols;
            float w = s[WEIGHT], oneMinusW = s[ONE_MINUS_WEIGHT], eps1 = s[EPS1], eps1Squared = s[EPS1_SQUARED];
            for (int m = 0; m < t.matrices; m++) {
                int base = m * rows * cols;
                for (int i = 0; i < rows; i++) {
                    float mean = (float) (rowSumOfSquares(g, base + i * cols, cols, t.lanes()) / cols);
                    rowVar[m * rows + i] = t.stored(lerp(rowVar[m * rows + i], mean, w, oneMinusW));
                }
                for (int j = 0; j < cols; j++) {
                    float mean = (float) (columnSumOfSquares(g, base + j, rows, cols, t.lanes()) / rows);
                    colVar[m * cols + j] = t.stored(lerp(colVar[m * cols + j], mean, w, oneMinusW));
                }
                float rowMean = Math.max((float) (sum(rowVar, m * rows, rows, t.lanes()) / rows), eps1);
                for (int i = 0; i < rows; i++) {
                    float r = rowVar[m * rows + i];
                    for (int j = 0; j < cols; j++) {
                        int k = base + i * cols + j;
                        float v = r * colVar[m * cols + j] / rowMean;
                        u[k] = g[k] / (float) Math.sqrt(Math.max(v, eps1Squared));
                    }
                }
            }
        }
    }
}
