package io.fusedopt;

/** Storage formats of parameters, gradients and optimizer state. Arithmetic is always float32. */
public enum Precision {
    /** IEEE binary32. */
    FP32(4),
    /** bfloat16: float32's sign and exponent, 7 mantissa bits. */
    BF16(2),
    /** IEEE binary16: 5 exponent bits, 10 mantissa bits, largest finite 65504. */
    FP16(2);

    private final int bytes;

    Precision(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }
}
