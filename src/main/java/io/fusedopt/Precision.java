package io.fusedopt;

/**
 * Storage formats of parameters, gradients and optimizer state. Arithmetic is always float32:
 * values are widened exactly when loaded and rounded to nearest even when stored (subnormals kept,
 * every NaN stored as the canonical 0x7FFF), the same on both backends.
 */
public enum Precision {
    /** IEEE binary32. */
    FP32(4, 0),
    /** bfloat16: float32's sign and exponent, 7 mantissa bits. */
    BF16(2, 1),
    /** IEEE binary16: 5 exponent bits, 10 mantissa bits, largest finite 65504. */
    FP16(2, 2);

    private final int bytes;
    private final int code;

    Precision(int bytes, int code) {
        this.bytes = bytes;
        this.code = code;
    }

    /** The kernels' code for this format (FO_F32, FO_BF16, FO_F16). */
    public int code() {
        return code;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }
}
