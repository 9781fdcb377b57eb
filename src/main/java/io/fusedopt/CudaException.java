package io.fusedopt;

/**
 * A CUDA driver call failed. Names the call, the {@code CUresult} code and its name, so that a
 * failure can be looked up without a debugger. fusedopt checks every driver call itself and never
 * turns on JCuda's process-wide exception flag.
 */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int code;
    private final String codeName;

    public CudaException(String call, int code, String codeName, String detail) {
        super(call + " failed: " + codeName + " (" + code + ")" + (detail == null || detail.isEmpty() ? "" : ": " + detail));
        this.call = call;
        this.code = code;
        this.codeName = codeName;
    }

    /** The driver call that failed, with the arguments that identify it. */
    public String call() { return call; }

    /** The raw {@code CUresult} value. */
    public int code() { return code; }

    /** The {@code CUresult} name, for example {@code CUDA_ERROR_OUT_OF_MEMORY}. */
    public String codeName() { return codeName; }
}
