package io.fusedopt.cpu;

/**
 * Where one operand's elements lie for {@link VectorKernels}' loads and stores: either a heap array
 * from an element offset ({@code FloatVector.fromArray}, on every JDK: the backend's own blocks and
 * callers' arrays), or a caller's direct buffer as a MemorySegment from byte 0 (JDK 19 and later,
 * {@link VectorKernels#NATIVE_ACCESS}). Element {@code i} of the operand is array element
 * {@code arrayOffset + i}, or bytes {@code [byteOffset + 4i, byteOffset + 4i + 4)} of the memory.
 *
 * <p>This class names no Vector API type, so step programs can hold it in a JVM without the module.
 */
public final class VectorOperand {
    /** The heap array, or null for native memory. */
    final float[] array;
    /** The array index of element 0 (0 for native memory). */
    final int arrayOffset;
    /** The native memory (a MemorySegment), or null for a heap array. */
    final Object memory;
    /** The byte offset of element 0 in the native memory (0 for a heap array). */
    final long byteOffset;

    private VectorOperand(float[] array, int arrayOffset, Object memory, long byteOffset) {
        this.array = array;
        this.arrayOffset = arrayOffset;
        this.memory = memory;
        this.byteOffset = byteOffset;
    }

    static VectorOperand ofArray(float[] array, int arrayOffset) {
        return new VectorOperand(array, arrayOffset, null, 0);
    }

    static VectorOperand ofNative(Object memory) {
        return new VectorOperand(null, 0, memory, 0);
    }

    /** The same memory from element {@code first} on (a chunk inside a block). */
    VectorOperand from(int first) {
        if (first == 0) return this; // immutable: a chunk at the start of its block shares the block's operand
        return new VectorOperand(array, array == null ? 0 : arrayOffset + first, memory,
                array == null ? byteOffset + (long) first * Float.BYTES : 0);
    }
}
