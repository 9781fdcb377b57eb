package io.fusedopt.cpu;

import static io.fusedopt.internal.KernelFlags.AMSGRAD;
import static io.fusedopt.internal.KernelFlags.CENTERED;
import static io.fusedopt.internal.KernelFlags.DECOUPLED_DECAY;
import static io.fusedopt.internal.KernelFlags.FIRST_STEP;
import static io.fusedopt.internal.KernelFlags.L2_DECAY;
import static io.fusedopt.internal.KernelFlags.MAXIMIZE;
import static io.fusedopt.internal.KernelFlags.MOMENTUM;
import static io.fusedopt.internal.KernelFlags.NESTEROV;
import static io.fusedopt.internal.KernelFlags.has;
import static io.fusedopt.internal.StepScalars.*;

import io.fusedopt.internal.UpdateKernel;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link ReferenceKernels} in SIMD form (the incubating Vector API, JDK 17 to 19 entry points):
 * every lane performs the reference's float32 operations in the reference's order, with
 * {@code lanewise FMA} exactly where the reference calls {@link Math#fma}; multiplication is
 * commutative and every operation is correctly rounded, so each lane's bits equal the reference's.
 * The elements after the last whole vector run through {@link ReferenceKernels} itself.
 *
 * <p>Operands are the same blocks twice: {@code bytes} (native order, for vectors) and
 * {@code floats} (views of those bytes, for the tail); element indices, not byte offsets.
 * Load this class only after {@link VectorSupport} said it links and runs here.
 */
final class VectorKernels {
    private VectorKernels() {}

    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /** Runs {@code kernel} over [from, to) of {param, grad, slot0, slot1, slot2} (null where unused). */
    static void run(UpdateKernel kernel, ByteBuffer[] o, FloatBuffer[] f, int from, int to, float[] s, int flags) {
        int vectorEnd = from + SPECIES.loopBound(to - from);
        switch (kernel) {
            case SGD -> sgd(o[0], o[1], from, vectorEnd, s, flags);
            case MOMENTUM_BUFFER -> momentumBuffer(o[0], o[1], o[2], from, vectorEnd, s, flags);
            case MOMENTUM_VELOCITY -> momentumVelocity(o[0], o[1], o[2], from, vectorEnd, s, flags);
            case RMSPROP -> rmsProp(o[0], o[1], o[2], o[3], o[4], from, vectorEnd, s, flags);
            case ADAM -> adam(o[0], o[1], o[2], o[3], o[4], from, vectorEnd, s, flags);
            case ADAGRAD -> adagrad(o[0], o[1], o[2], from, vectorEnd, s, flags);
        }
        if (vectorEnd < to) ReferenceKernels.run(kernel, f, vectorEnd, to, s, flags);
    }

    private static FloatVector load(ByteBuffer b, int i) {
        return FloatVector.fromByteBuffer(SPECIES, b, i << 2, ORDER);
    }

    private static void store(FloatVector v, ByteBuffer b, int i) {
        v.intoByteBuffer(b, i << 2, ORDER);
    }

    private static FloatVector broadcast(float value) {
        return FloatVector.broadcast(SPECIES, value);
    }

    /** ReferenceKernels.effectiveGrad: negated for maximize, then fma(weightDecay, p, g) for L2. */
    private static FloatVector effectiveGrad(FloatVector g, FloatVector p, FloatVector weightDecay, boolean maximize, boolean l2) {
        if (maximize) g = g.neg();
        if (l2) g = p.fma(weightDecay, g);
        return g;
    }

    private static void sgd(ByteBuffer param, ByteBuffer grad, int from, int to, float[] s, int flags) {
        boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
        FloatVector negLr = broadcast(s[SGD_NEG_LR]), wd = broadcast(s[SGD_WEIGHT_DECAY]);
        for (int i = from; i < to; i += SPECIES.length()) {
            FloatVector p = load(param, i);
            FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
            store(g.fma(negLr, p), param, i);
        }
    }

    private static void momentumBuffer(ByteBuffer param, ByteBuffer grad, ByteBuffer buffer, int from, int to, float[] s, int flags) {
        boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
        boolean first = has(flags, FIRST_STEP), nesterov = has(flags, NESTEROV);
        FloatVector negLr = broadcast(s[MOMENTUM_NEG_LR]), wd = broadcast(s[MOMENTUM_WEIGHT_DECAY]);
        FloatVector mu = broadcast(s[MOMENTUM_MU]), oneMinusDampening = broadcast(s[MOMENTUM_ONE_MINUS_DAMPENING]);
        for (int i = from; i < to; i += SPECIES.length()) {
            FloatVector p = load(param, i);
            FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
            FloatVector b = first ? g : load(buffer, i).fma(mu, g.mul(oneMinusDampening));
            FloatVector d = nesterov ? b.fma(mu, g) : b;
            store(b, buffer, i);
            store(d.fma(negLr, p), param, i);
        }
    }

    private static void momentumVelocity(ByteBuffer param, ByteBuffer grad, ByteBuffer velocity, int from, int to, float[] s, int flags) {
        boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY), nesterov = has(flags, NESTEROV);
        FloatVector negLr = broadcast(s[MOMENTUM_NEG_LR]), wd = broadcast(s[MOMENTUM_WEIGHT_DECAY]);
        FloatVector mu = broadcast(s[MOMENTUM_MU]);
        for (int i = from; i < to; i += SPECIES.length()) {
            FloatVector p = load(param, i);
            FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
            FloatVector a = g.mul(negLr);
            FloatVector v = load(velocity, i).fma(mu, a);
            store(v, velocity, i);
            store(nesterov ? v.fma(mu, p.add(a)) : p.add(v), param, i);
        }
    }

    private static void rmsProp(ByteBuffer param, ByteBuffer grad, ByteBuffer squareAvg, ByteBuffer gradAvg,
                                ByteBuffer momentumBuffer, int from, int to, float[] s, int flags) {
        boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
        boolean centered = has(flags, CENTERED), momentum = has(flags, MOMENTUM);
        FloatVector negLr = broadcast(s[RMSPROP_NEG_LR]), wd = broadcast(s[RMSPROP_WEIGHT_DECAY]);
        FloatVector alpha = broadcast(s[RMSPROP_ALPHA]), oneMinusAlpha = broadcast(s[RMSPROP_ONE_MINUS_ALPHA]);
        FloatVector eps = broadcast(s[RMSPROP_EPS]), mom = broadcast(s[RMSPROP_MOMENTUM]);
        for (int i = from; i < to; i += SPECIES.length()) {
            FloatVector p = load(param, i);
            FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
            FloatVector sq = load(squareAvg, i).fma(alpha, g.mul(g).mul(oneMinusAlpha));
            store(sq, squareAvg, i);
            FloatVector avg = sq;
            if (centered) {
                FloatVector a = load(gradAvg, i).fma(alpha, g.mul(oneMinusAlpha));
                store(a, gradAvg, i);
                avg = a.neg().fma(a, sq);
            }
            FloatVector step = g.div(avg.sqrt().add(eps));
            if (momentum) {
                step = load(momentumBuffer, i).fma(mom, step);
                store(step, momentumBuffer, i);
            }
            store(step.fma(negLr, p), param, i);
        }
    }

    private static void adam(ByteBuffer param, ByteBuffer grad, ByteBuffer expAvg, ByteBuffer expAvgSq,
                             ByteBuffer maxExpAvgSq, int from, int to, float[] s, int flags) {
        boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
        boolean decoupled = has(flags, DECOUPLED_DECAY), amsgrad = has(flags, AMSGRAD);
        FloatVector negStepSize = broadcast(s[ADAM_NEG_STEP_SIZE]), invSqrtBc2 = broadcast(s[ADAM_INV_SQRT_BC2]);
        FloatVector beta1 = broadcast(s[ADAM_BETA1]), oneMinusBeta1 = broadcast(s[ADAM_ONE_MINUS_BETA1]);
        FloatVector beta2 = broadcast(s[ADAM_BETA2]), oneMinusBeta2 = broadcast(s[ADAM_ONE_MINUS_BETA2]);
        FloatVector eps = broadcast(s[ADAM_EPS]), wd = broadcast(s[ADAM_WEIGHT_DECAY]);
        FloatVector decayFactor = broadcast(s[ADAM_DECAY_FACTOR]);
        for (int i = from; i < to; i += SPECIES.length()) {
            FloatVector p = load(param, i);
            if (decoupled) p = p.mul(decayFactor);
            FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
            FloatVector m = load(expAvg, i).fma(beta1, g.mul(oneMinusBeta1));
            FloatVector v = load(expAvgSq, i).fma(beta2, g.mul(g).mul(oneMinusBeta2));
            store(m, expAvg, i);
            store(v, expAvgSq, i);
            if (amsgrad) {
                FloatVector max = load(maxExpAvgSq, i);
                // ReferenceKernels.maxPropagatingNaN: the candidate where it is larger or NaN.
                VectorMask<Float> takeNew = v.compare(VectorOperators.GT, max).or(v.test(VectorOperators.IS_NAN));
                v = max.blend(v, takeNew);
                store(v, maxExpAvgSq, i);
            }
            FloatVector denom = v.sqrt().fma(invSqrtBc2, eps);
            store(m.div(denom).fma(negStepSize, p), param, i);
        }
    }

    private static void adagrad(ByteBuffer param, ByteBuffer grad, ByteBuffer sum, int from, int to, float[] s, int flags) {
        boolean maximize = has(flags, MAXIMIZE), l2 = has(flags, L2_DECAY);
        FloatVector negClr = broadcast(s[ADAGRAD_NEG_CLR]), wd = broadcast(s[ADAGRAD_WEIGHT_DECAY]);
        FloatVector eps = broadcast(s[ADAGRAD_EPS]);
        for (int i = from; i < to; i += SPECIES.length()) {
            FloatVector p = load(param, i);
            FloatVector g = effectiveGrad(load(grad, i), p, wd, maximize, l2);
            FloatVector h = g.fma(g, load(sum, i));
            store(h, sum, i);
            store(g.div(h.sqrt().add(eps)).fma(negClr, p), param, i);
        }
    }
}
