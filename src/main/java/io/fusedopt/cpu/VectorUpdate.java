package io.fusedopt.cpu;

/**
 * An update kernel in SIMD form ({@link io.fusedopt.internal.UpdateKernel#vectorUpdate()}): runs
 * whole vectors of {@link VectorKernels#SPECIES} over [from, to) (to - from a multiple of the
 * vector length) of the operands {param, grad, slot0, slot1, slot2}, null where unused. An
 * implementation uses the incubating Vector API through {@link VectorKernels}' loads, stores and
 * helpers, so it is loaded only once the CPU_FAST backend found the module.
 */
public interface VectorUpdate {
    void run(VectorOperand[] o, int from, int to, float[] s, int flags);
}
