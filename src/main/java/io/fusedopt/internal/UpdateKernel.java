package io.fusedopt.internal;

import io.fusedopt.cpu.VectorUpdate;
import java.nio.FloatBuffer;

/**
 * One elementwise update kernel: its CUDA family (the fatbin of {@code kernels/FAMILY.cu}) and
 * entry point (plus the {@code _mixed} entry point for storage formats other than float32, the
 * {@code _narrow} one for tensors whose every operand is 16-bit, and the {@code _q8} one for 8-bit
 * states), how
 * many state slots it takes after param and grad (a slot may be null when the variant does not use
 * it), how many float scalars its per-step scalar struct holds, and its arithmetic on the host: the
 * per-step scalars, the reference update and the vector update. Each {@link Algorithm} declares its
 * kernels; {@link Algorithms} numbers them.
 *
 * <p>The CUDA kernel computes the same scalars ({@code Scalars::of} in its {@code .cu}) and
 * performs the same per-element float32 operations as {@link #reference} and {@link #vectorUpdate},
 * operation for operation, so that every backend gives the same bits.
 */
public abstract class UpdateKernel {
    /** State operands a kernel can take (FoTensor.state in kernels/fusedopt_common.cuh). */
    public static final int MAX_STATE_SLOTS = 3;

    private final String name;
    private final String family;
    private final String entryPoint;
    private final int stateSlots;
    private final int scalarCount;
    private int code = -1;
    private boolean quantized;
    private volatile VectorUpdate vectorUpdate;

    /**
     * @param name        a short name for messages and reports ("ADAM", "MOMENTUM_BUFFER")
     * @param family      the {@code kernels/*.cu} file (without the extension) holding the entry point
     * @param entryPoint  the float32 entry point's name in that file
     * @param stateSlots  state operands after param and grad
     * @param scalarCount floats in the per-step scalar struct (at most {@link StepScalars#SCALAR_STRIDE})
     */
    protected UpdateKernel(String name, String family, String entryPoint, int stateSlots, int scalarCount) {
        if (stateSlots > MAX_STATE_SLOTS || scalarCount > StepScalars.SCALAR_STRIDE) {
            throw new IllegalArgumentException(name + ": " + stateSlots + " state slots, " + scalarCount + " scalars");
        }
        this.name = name;
        this.family = family;
        this.entryPoint = entryPoint;
        this.stateSlots = stateSlots;
        this.scalarCount = scalarCount;
    }

    public String family() { return family; }
    public String entryPoint() { return entryPoint; }
    /** The entry point that reads any storage format and master weights. */
    public String mixedEntryPoint() { return entryPoint + "_mixed"; }

    /**
     * The entry point for tensors whose every operand (param, grad, each state) is 16-bit, without
     * master weights ({@link TensorOperands#narrow}): the mixed entry point's arithmetic, with
     * twice the elements in flight per thread. Only plain elementwise kernels
     * ({@code FO_UPDATE_KERNELS}) have one ({@link #hasNarrowEntryPoint}).
     */
    public String narrowEntryPoint() { return entryPoint + "_narrow"; }

    /** Whether this kernel has {@link #narrowEntryPoint()}: true unless a subclass launches otherwise. */
    public boolean hasNarrowEntryPoint() {
        return true;
    }
    /**
     * The entry point for 8-bit blockwise states ({@code kernels/FAMILY.cu} declares it with
     * FO_QUANTIZED_UPDATE_KERNEL); only the kernels of algorithms with 8-bit states have one
     * ({@link #hasQuantizedEntryPoint}).
     */
    public String quantizedEntryPoint() { return entryPoint + "_q8"; }

    /** Whether this kernel has {@link #quantizedEntryPoint()}: it runs an algorithm with 8-bit states. */
    public boolean hasQuantizedEntryPoint() {
        return quantized;
    }

    void markQuantized() {
        quantized = true;
    }
    public int stateSlots() { return stateSlots; }
    public int scalarCount() { return scalarCount; }
    public String name() { return name; }

    /** This kernel's index in {@link Algorithms#kernels()}, for tables indexed by kernel. */
    public int code() {
        return code;
    }

    void assignCode(int code) {
        if (this.code != -1) throw new IllegalStateException(name + " is registered twice");
        this.code = code;
    }

    /**
     * The scalars of step {@code step} (>= 1, the tensors' own step) of a group with
     * hyper-parameters {@code hyper[h...]} (laid out by its {@link Algorithm#hyperParameters}), the
     * step's learning rate {@code lr} (the hyper-parameter or its scheduled value) and
     * step-independent flags {@code flags}, into {@code out[o...]}. Rule: every value derived from
     * the float32 hyper-parameters is computed in double and rounded once to float32.
     */
    public abstract void scalars(float[] hyper, int h, float lr, int flags, long step, float[] out, int o);

    /**
     * The reference update of elements [from, to) of one tensor, with the operands
     * {param, grad, slot0, slot1, slot2} at {@code o[first]} to {@code o[first + 4]} (null where the
     * variant keeps no such state): plain loops of float32 operations, {@link Math#fma} where the
     * kernel writes {@code __fmaf_rn}.
     */
    public abstract void reference(FloatBuffer[] o, int first, int from, int to, float[] s, int flags);

    /**
     * The update in SIMD form, each lane performing {@link #reference}'s operations. Its class uses
     * the incubating Vector API, so it is created on first use, only once the CPU_FAST backend found
     * the module.
     */
    public final VectorUpdate vectorUpdate() {
        VectorUpdate v = vectorUpdate;
        if (v == null) vectorUpdate = v = newVectorUpdate();
        return v;
    }

    /** A new instance of the vector update (a nested class, so that it loads only when called). */
    protected abstract VectorUpdate newVectorUpdate();

    @Override
    public String toString() {
        return name;
    }
}
