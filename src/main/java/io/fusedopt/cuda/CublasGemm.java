package io.fusedopt.cuda;

import io.fusedopt.BackendUnavailableException;
import io.fusedopt.CudaException;
import jcuda.Pointer;
import jcuda.cudaDataType;
import jcuda.driver.CUstream;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasComputeType;
import jcuda.jcublas.cublasGemmAlgo;
import jcuda.jcublas.cublasHandle;
import jcuda.jcublas.cublasMath;
import jcuda.jcublas.cublasOperation;
import jcuda.jcublas.cublasPointerMode;
import jcuda.jcublas.cublasStatus;
import jcuda.runtime.cudaStream_t;

/**
 * cuBLAS's strided batched GEMM for one engine: row-major matrices in device memory, fp32
 * accumulation, fp32 results, inputs in fp32 ({@code cublasSgemmStridedBatched}) or bf16
 * ({@code cublasGemmStridedBatchedEx}, {@code CUBLAS_COMPUTE_32F}), as PyTorch runs Muon's
 * Newton-Schulz iteration. One cuBLAS handle, created in the engine's primary context (the engine
 * creates this object on first use, see {@link CudaEngine#cublas()}); each product goes to the
 * stream it is given, so that it can be captured into a graph like a kernel launch. Creating the
 * handle allocates device memory, which a stream capture forbids: create it before capturing.
 *
 * <p>cuBLAS promises no summation order: its results are to be held against fusedopt's own within
 * tolerances, not bit for bit (the CUDA emulator's cuBLAS double defines one order, see
 * docs/cuda.md).
 */
final class CublasGemm implements AutoCloseable {
    /** The element type of A and B; C is fp32. */
    enum Input {
        FP32(cudaDataType.CUDA_R_32F, Float.BYTES),
        BF16(cudaDataType.CUDA_R_16BF, Short.BYTES);

        final int cudaType;
        final int bytes;

        Input(int cudaType, int bytes) {
            this.cudaType = cudaType;
            this.bytes = bytes;
        }
    }

    /**
     * {@code batches} products {@code C[i] = alpha * op(A[i]) * op(B[i]) + beta * C[i]} of row-major
     * matrices, each batch's matrices packed one after the other: op(A) is m x k (A stored m x k,
     * or k x m when {@code transposeA}), op(B) is k x n (B stored k x n, or n x k when
     * {@code transposeB}), C is m x n. With beta 0, C is only written.
     */
    record Product(Input input, int batches, int m, int n, int k, boolean transposeA, boolean transposeB) {
        Product {
            if (input == null) throw new IllegalArgumentException("input must not be null");
            requirePositive("batches", batches);
            requirePositive("m", m);
            requirePositive("n", n);
            requirePositive("k", k);
        }

        private static void requirePositive(String name, int value) {
            if (value <= 0) throw new IllegalArgumentException(name + " must be > 0, got " + value);
        }

        long aElements() {
            return (long) m * k;
        }

        long bElements() {
            return (long) k * n;
        }

        long cElements() {
            return (long) m * n;
        }
    }

    private final CudaEngine engine;
    private final cublasHandle handle = new cublasHandle();
    private final float[] alpha = new float[1];
    private final float[] beta = new float[1];
    private boolean closed;

    /**
     * Creates the handle in the engine's context, bound to the engine's stream.
     *
     * @throws BackendUnavailableException where {@link CublasSupport#status()} says cuBLAS is off
     */
    CublasGemm(CudaEngine engine) {
        CublasSupport.Status status = CublasSupport.status();
        if (!status.available()) throw new BackendUnavailableException(status.reason());
        this.engine = engine;
        engine.makeCurrent();
        check(JCublas2.cublasCreate(handle), "cublasCreate");
        try {
            check(JCublas2.cublasSetStream(handle, new cudaStream_t(engine.stream())), "cublasSetStream");
            // Host scalars, read at the call (and, when captured, fixed in the graph).
            check(JCublas2.cublasSetPointerMode(handle, cublasPointerMode.CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
            // No TF32: fp32 inputs are multiplied in fp32.
            check(JCublas2.cublasSetMathMode(handle, cublasMath.CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
        } catch (RuntimeException e) {
            JCublas2.cublasDestroy(handle);
            throw e;
        }
    }

    /**
     * Queues {@code product} on {@code stream} (the engine's, or one capturing a graph in the
     * engine's context), on the device addresses of A, B and C.
     */
    synchronized void queue(CUstream stream, Product product, long a, long b, long c, float alpha, float beta) {
        if (closed) throw new IllegalStateException("the cuBLAS handle is closed");
        engine.makeCurrent();
        check(JCublas2.cublasSetStream(handle, new cudaStream_t(stream)), "cublasSetStream");
        this.alpha[0] = alpha;
        this.beta[0] = beta;
        // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: a row-major matrix read
        // column-major is its transpose, so cuBLAS gets B as its first operand and A as its second,
        // with the dimensions n, m, k and each matrix's row length as leading dimension.
        int m = product.n();
        int n = product.m();
        int k = product.k();
        int transposeFirst = product.transposeB() ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N;
        int transposeSecond = product.transposeA() ? cublasOperation.CUBLAS_OP_T : cublasOperation.CUBLAS_OP_N;
        int ldFirst = product.transposeB() ? product.k() : product.n();
        int ldSecond = product.transposeA() ? product.m() : product.k();
        int status = product.input() == Input.FP32
                ? JCublas2.cublasSgemmStridedBatched(handle, transposeFirst, transposeSecond, m, n, k, Pointer.to(this.alpha),
                        Driver.pointerAt(b), ldFirst, product.bElements(), Driver.pointerAt(a), ldSecond, product.aElements(),
                        Pointer.to(this.beta), Driver.pointerAt(c), m, product.cElements(), product.batches())
                : JCublas2.cublasGemmStridedBatchedEx_new(handle, transposeFirst, transposeSecond, m, n, k, Pointer.to(this.alpha),
                        Driver.pointerAt(b), product.input().cudaType, ldFirst, product.bElements(), Driver.pointerAt(a),
                        product.input().cudaType, ldSecond, product.aElements(), Pointer.to(this.beta), Driver.pointerAt(c),
                        cudaDataType.CUDA_R_32F, m, product.cElements(), product.batches(), cublasComputeType.CUBLAS_COMPUTE_32F,
                        cublasGemmAlgo.CUBLAS_GEMM_DEFAULT);
        if (status != cublasStatus.CUBLAS_STATUS_SUCCESS) { // the call's name only for the failure: a step queues many
            check(status, (product.input() == Input.FP32 ? "cublasSgemmStridedBatched" : "cublasGemmStridedBatchedEx") + "("
                    + product + ")");
        }
    }

    /** Throws {@link CudaException} naming the call and the cublasStatus unless {@code status} is success. */
    static void check(int status, String call) {
        if (status != cublasStatus.CUBLAS_STATUS_SUCCESS) {
            throw new CudaException(call, status, cublasStatus.stringFor(status), describe(status));
        }
    }

    /** What a cublasStatus means, in the words of the cuBLAS documentation. */
    private static String describe(int status) {
        return switch (status) {
            case cublasStatus.CUBLAS_STATUS_NOT_INITIALIZED -> "the cuBLAS library or handle was not initialized";
            case cublasStatus.CUBLAS_STATUS_ALLOC_FAILED -> "cuBLAS could not allocate resources";
            case cublasStatus.CUBLAS_STATUS_INVALID_VALUE -> "an unsupported value or parameter was passed to the function";
            case cublasStatus.CUBLAS_STATUS_ARCH_MISMATCH -> "the device does not support this operation";
            case cublasStatus.CUBLAS_STATUS_EXECUTION_FAILED -> "the GPU program failed to execute (to launch, on the stream)";
            case cublasStatus.CUBLAS_STATUS_NOT_SUPPORTED -> "the functionality requested is not supported";
            default -> "";
        };
    }

    /** Destroys the handle (cuBLAS waits for the device first). */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        engine.makeCurrent();
        check(JCublas2.cublasDestroy(handle), "cublasDestroy");
    }
}
