// A test double of cuBLAS 12 (libcublas.so.12, the library JCublas2's natives link against, with
// symbols of version libcublas.so.12): the entry points fusedopt calls, emulated on the host over
// the CUDA driver emulator. Work is queued on the handle's stream through the emulator's host-work
// hook (host_work.h): ordered like a kernel launch, recorded into a capture, its device operands
// checked when it runs, its faults poisoning the context as a kernel's would. Only these functions
// exist: JCublas2's natives bind lazily, and a call to any other cuBLAS function ends the JVM with
// "undefined symbol", which a test that reaches one makes plain.
// cublasCreate allocates device memory, as cuBLAS's does: not during a stream capture.
//
// The arithmetic, defined here because cuBLAS promises no order (fusedopt holds cuBLAS results to
// its own within tolerances, never bits):
//   GEMM (cublasSgemmStridedBatched, cublasGemmStridedBatchedEx), column-major as cuBLAS defines
//   it, for each batch b, column j, row i of C:
//     acc = +0.0f; for l = 0, 1, ..., k-1: acc = fmaf(op(A)[i,l], op(B)[l,j], acc)
//     C[i,j] = beta == 0 ? alpha*acc : alpha*acc + beta*C[i,j]   (each * and + rounded to fp32)
//   with bf16 inputs widened exactly to fp32. With beta == 0, C is not read (it may hold NaN);
//   with alpha == 0 or k == 0, A and B are not read and C = beta*C (0 when beta == 0), as the
//   reference BLAS does.
//   AXPY (cublasSaxpy_v2): y[i] = fmaf(alpha, x[i], y[i]) for i = 0, ..., n-1, in order; nothing
//   when n <= 0 or alpha == 0.
// The math mode is kept and reported, never used: a real cuBLAS may compute fp32 GEMMs in TF32
// under CUBLAS_TF32_TENSOR_OP_MATH; this one always computes in fp32 as above.
#include "host_work.h"

#include <cuda.h>
#include <library_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

namespace {

// cuBLAS 12's ABI (cublas_api.h is not part of the toolkit headers the emulator requires).
enum Status {
  kSuccess = 0,
  kNotInitialized = 1,
  kAllocFailed = 3,
  kInvalidValue = 7,
  kExecutionFailed = 13,
  kNotSupported = 15,
};
enum Operation { kOpN = 0, kOpT = 1, kOpC = 2 };
enum PointerMode { kPointerHost = 0, kPointerDevice = 1 };
enum MathMode { kMathDefault = 0, kMathTf32 = 3, kMathDisallowReducedPrecisionReduction = 16 };
enum ComputeType { kCompute32F = 68, kCompute32FPedantic = 69 };
constexpr int kGemmAlgoDefault = -1, kGemmAlgoLast = 23, kGemmTensorOpFirst = 99, kGemmTensorOpLast = 115;

struct Handle {
  CUstream stream = nullptr;  // null: the legacy default stream, as in cuBLAS
  int math = kMathDefault;
  int pointer_mode = kPointerHost;
  CUdeviceptr resources = 0;  // what cublasCreate allocates on the device (unused here)
};

// cublasCreate "allocates hardware resources on the host and device" (cuBLAS documentation): the
// double allocates this much, so that creating a handle during a stream capture fails and
// invalidates the capture as an allocation does, and the memory counts in cuMemGetInfo.
constexpr size_t kHandleDeviceBytes = 4096;

std::mutex handles_lock;
std::set<Handle*>& handles = *new std::set<Handle*>();  // live handles; never destroyed (exit order)

Handle* live(void* handle) {
  std::lock_guard<std::mutex> guard(handles_lock);
  auto* h = static_cast<Handle*>(handle);
  return handles.count(h) ? h : nullptr;
}

// A handle's setting, changed when the value is valid (the cublasSet* functions).
template <typename T>
int write_setting(void* handle, T value, bool valid, T Handle::*setting) {
  Handle* h = live(handle);
  if (!h) return kNotInitialized;
  if (!valid) return kInvalidValue;
  h->*setting = value;
  return kSuccess;
}

// A handle's setting, written where the caller says (the cublasGet* functions).
template <typename T>
int read_setting(void* handle, T* out, T Handle::*setting) {
  Handle* h = live(handle);
  if (!h) return kNotInitialized;
  if (!out) return kInvalidValue;
  *out = h->*setting;
  return kSuccess;
}

// A scalar argument: read at the call in host pointer mode, when the work runs in device mode.
struct Scalar {
  bool on_device;
  float value;
  CUdeviceptr address;
  float get() const { return on_device ? *reinterpret_cast<const float*>(address) : value; }
  bool known_zero() const { return !on_device && value == 0.0f; }
};

Scalar scalar(const Handle& h, const void* pointer) {
  if (h.pointer_mode == kPointerDevice) return Scalar{true, 0.0f, (CUdeviceptr)(uintptr_t)pointer};
  return Scalar{false, *static_cast<const float*>(pointer), 0};
}

fo_emu_operand scalar_operand(const Scalar& s, const char* name) {
  return fo_emu_operand{s.address, s.on_device ? sizeof(float) : 0, 0, name};
}

// The bytes a strided run of `count` elements of `size` bytes spans, from its lowest address.
fo_emu_operand strided(CUdeviceptr base, long long first, long long last, size_t size, int written, const char* name) {
  const __int128 lo = std::min<long long>(first, last), hi = std::max<long long>(first, last) + 1;
  const __int128 bytes = (hi - lo) * (__int128)size;
  const __int128 start = (__int128)base + lo * (__int128)size;
  return fo_emu_operand{(CUdeviceptr)start, bytes > (__int128)SIZE_MAX ? SIZE_MAX : (size_t)bytes, written, name};
}

// The elements a batch of `count` rows x cols matrices (leading dimension ld, `stride` apart) spans.
fo_emu_operand matrices(CUdeviceptr base, int rows, int cols, int ld, long long stride, int count, size_t size, int written,
                        const char* name) {
  const long long last_in_matrix = (long long)(cols - 1) * ld + (rows - 1);
  const long long batch_offset = (long long)(count - 1) * stride;
  const fo_emu_operand first = strided(base, 0, last_in_matrix, size, written, name);
  const fo_emu_operand last = strided(base, batch_offset, batch_offset + last_in_matrix, size, written, name);
  const CUdeviceptr start = std::min(first.address, last.address);
  const CUdeviceptr end = std::max(first.address + first.bytes, last.address + last.bytes);
  return fo_emu_operand{start, (size_t)(end - start), written, name};
}

const char* result_name(CUresult r) {
  const char* name = nullptr;
  return cuGetErrorName(r, &name) == CUDA_SUCCESS && name ? name : "unknown CUresult";
}

// Queues work on the handle's stream; a failure to queue is what cuBLAS reports for a kernel that
// failed to launch.
template <typename Work>
int queue(const Handle& h, const char* call, const std::vector<fo_emu_operand>& operands, Work* work) {
  CUresult r = fo_emu_enqueue_host_work(
      h.stream, call, operands.data(), operands.size(), [](void* p) { return static_cast<Work*>(p)->run(); }, work,
      [](void* p) { delete static_cast<Work*>(p); });
  if (r == CUDA_SUCCESS) return kSuccess;
  fprintf(stderr, "fusedopt cuBLAS double: %s could not be queued: %s\n", call, result_name(r));
  return kExecutionFailed;
}

struct Gemm {
  int transa, transb, m, n, k;
  Scalar alpha, beta;
  CUdeviceptr a, b, c;
  cudaDataType input_type;
  int lda, ldb, ldc;
  long long stride_a, stride_b, stride_c;
  int batches;

  float input(CUdeviceptr base, long long index) const {
    if (input_type == CUDA_R_32F) return reinterpret_cast<const float*>(base)[index];
    const uint32_t bits = uint32_t(reinterpret_cast<const uint16_t*>(base)[index]) << 16;  // bf16 widens exactly
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
  }

  CUresult run() const {
    const float alpha_value = alpha.get(), beta_value = beta.get();
    const bool reads_inputs = alpha_value != 0.0f && k > 0;
    for (int batch = 0; batch < batches; batch++) {
      const CUdeviceptr a_batch = a + (CUdeviceptr)(batch * stride_a * (long long)element_size());
      const CUdeviceptr b_batch = b + (CUdeviceptr)(batch * stride_b * (long long)element_size());
      float* c_batch = reinterpret_cast<float*>(c) + batch * stride_c;
      for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
          float acc = 0.0f;  // +0: an all -0 sum stays +0
          if (reads_inputs) {
            for (int l = 0; l < k; l++) {
              const float x = input(a_batch, transa == kOpN ? i + (long long)l * lda : l + (long long)i * lda);
              const float y = input(b_batch, transb == kOpN ? l + (long long)j * ldb : j + (long long)l * ldb);
              acc = std::fma(x, y, acc);
            }
          }
          float& out = c_batch[i + (long long)j * ldc];
          if (!reads_inputs) {
            out = beta_value == 0.0f ? 0.0f : beta_value * out;
          } else {
            out = beta_value == 0.0f ? alpha_value * acc : alpha_value * acc + beta_value * out;
          }
        }
      }
    }
    return CUDA_SUCCESS;
  }

  size_t element_size() const { return input_type == CUDA_R_32F ? 4 : 2; }
};

int gemm(const char* call, void* handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a,
         cudaDataType a_type, int lda, long long stride_a, const void* b, cudaDataType b_type, int ldb, long long stride_b,
         const void* beta, void* c, cudaDataType c_type, int ldc, long long stride_c, int batches) {
  Handle* h = live(handle);
  if (!h) return kNotInitialized;
  auto valid_op = [](int op) { return op == kOpN || op == kOpT || op == kOpC; };
  const int a_rows = transa == kOpN ? m : k, b_rows = transb == kOpN ? k : n;
  if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || batches < 0 || lda < std::max(1, a_rows) ||
      ldb < std::max(1, b_rows) || ldc < std::max(1, m) || !alpha || !beta) {
    return kInvalidValue;
  }
  const bool supported = a_type == b_type && (a_type == CUDA_R_32F || a_type == CUDA_R_16BF) && c_type == CUDA_R_32F;
  if (!supported) {
    fprintf(stderr, "fusedopt cuBLAS double: %s with A, B, C of cudaDataType %d, %d, %d is not emulated (only A and B both"
            " CUDA_R_32F or both CUDA_R_16BF, C CUDA_R_32F)\n", call, (int)a_type, (int)b_type, (int)c_type);
    return kNotSupported;
  }
  if (m == 0 || n == 0 || batches == 0) return kSuccess;
  const int t_a = transa == kOpC ? kOpT : transa, t_b = transb == kOpC ? kOpT : transb;  // real matrices
  auto* work = new Gemm{t_a, t_b, m, n, k, scalar(*h, alpha), scalar(*h, beta), (CUdeviceptr)(uintptr_t)a,
                        (CUdeviceptr)(uintptr_t)b, (CUdeviceptr)(uintptr_t)c, a_type, lda, ldb, ldc, stride_a, stride_b,
                        stride_c, batches};
  std::vector<fo_emu_operand> operands{scalar_operand(work->alpha, "alpha"), scalar_operand(work->beta, "beta")};
  if (k > 0 && !work->alpha.known_zero()) {
    const size_t size = work->element_size();
    operands.push_back(matrices(work->a, a_rows, transa == kOpN ? k : m, lda, stride_a, batches, size, 0, "A"));
    operands.push_back(matrices(work->b, b_rows, transb == kOpN ? n : k, ldb, stride_b, batches, size, 0, "B"));
  }
  operands.push_back(matrices(work->c, m, n, ldc, stride_c, batches, sizeof(float), 1, "C"));
  return queue(*h, call, operands, work);
}

struct Axpy {
  int n;
  Scalar alpha;
  CUdeviceptr x, y;
  long long x_first, incx, y_first, incy;

  CUresult run() const {
    const float a = alpha.get();
    if (a == 0.0f) return CUDA_SUCCESS;
    const float* xs = reinterpret_cast<const float*>(x);
    float* ys = reinterpret_cast<float*>(y);
    for (long long i = 0; i < n; i++) {
      float& out = ys[y_first + i * incy];
      out = std::fma(a, xs[x_first + i * incx], out);
    }
    return CUDA_SUCCESS;
  }
};

}  // namespace

extern "C" {

struct cublasContext;
typedef cublasContext* cublasHandle_t;

int cublasCreate_v2(cublasHandle_t* out) {
  if (!out) return kInvalidValue;
  CUcontext current = nullptr;
  if (cuCtxGetCurrent(&current) != CUDA_SUCCESS || !current) return kNotInitialized;  // no device to work on
  CUdeviceptr resources = 0;
  if (CUresult r = cuMemAlloc(&resources, kHandleDeviceBytes); r != CUDA_SUCCESS) {
    fprintf(stderr, "fusedopt cuBLAS double: cublasCreate_v2 could not allocate its device resources: %s\n", result_name(r));
    return kAllocFailed;
  }
  auto* h = new Handle();
  h->resources = resources;
  std::lock_guard<std::mutex> guard(handles_lock);
  handles.insert(h);
  *out = reinterpret_cast<cublasHandle_t>(h);
  return kSuccess;
}

// As cuBLAS documents, destroying a handle synchronizes the device first.
int cublasDestroy_v2(cublasHandle_t handle) {
  Handle* h = live(handle);
  if (!h) return kNotInitialized;
  cuCtxSynchronize();  // an error it reports stays with the context, for the next driver call
  cuMemFree(h->resources);  // fails harmlessly when a context reset has freed it already
  std::lock_guard<std::mutex> guard(handles_lock);
  handles.erase(h);
  delete h;
  return kSuccess;
}

int cublasSetStream_v2(cublasHandle_t handle, CUstream stream) {
  return write_setting(handle, stream, true, &Handle::stream);
}

int cublasGetStream_v2(cublasHandle_t handle, CUstream* stream) {
  return read_setting(handle, stream, &Handle::stream);
}

int cublasSetMathMode(cublasHandle_t handle, int mode) {
  const int base = mode & ~kMathDisallowReducedPrecisionReduction;
  return write_setting(handle, mode, base >= kMathDefault && base <= kMathTf32, &Handle::math);
}

int cublasGetMathMode(cublasHandle_t handle, int* mode) {
  return read_setting(handle, mode, &Handle::math);
}

int cublasSetPointerMode_v2(cublasHandle_t handle, int mode) {
  return write_setting(handle, mode, mode == kPointerHost || mode == kPointerDevice, &Handle::pointer_mode);
}

int cublasGetPointerMode_v2(cublasHandle_t handle, int* mode) {
  return read_setting(handle, mode, &Handle::pointer_mode);
}

int cublasSaxpy_v2(cublasHandle_t handle, int n, const float* alpha, const float* x, int incx, float* y, int incy) {
  Handle* h = live(handle);
  if (!h) return kNotInitialized;
  if (!alpha) return kInvalidValue;
  if (n <= 0) return kSuccess;
  const Scalar a = scalar(*h, alpha);
  if (a.known_zero()) return kSuccess;
  // The reference BLAS's order: a negative increment starts at the far end.
  const long long x_first = incx < 0 ? (long long)(1 - n) * incx : 0, y_first = incy < 0 ? (long long)(1 - n) * incy : 0;
  auto* work = new Axpy{n, a, (CUdeviceptr)(uintptr_t)x, (CUdeviceptr)(uintptr_t)y, x_first, incx, y_first, incy};
  const long long x_last = x_first + (long long)(n - 1) * incx, y_last = y_first + (long long)(n - 1) * incy;
  return queue(*h, "cublasSaxpy_v2",
               {scalar_operand(a, "alpha"), strided(work->x, x_first, x_last, sizeof(float), 0, "x"),
                strided(work->y, y_first, y_last, sizeof(float), 1, "y")},
               work);
}

int cublasSgemmStridedBatched(cublasHandle_t handle, int transa, int transb, int m, int n, int k, const float* alpha,
                              const float* a, int lda, long long stride_a, const float* b, int ldb, long long stride_b,
                              const float* beta, float* c, int ldc, long long stride_c, int batches) {
  return gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, a, CUDA_R_32F, lda, stride_a, b, CUDA_R_32F,
              ldb, stride_b, beta, c, CUDA_R_32F, ldc, stride_c, batches);
}

int cublasGemmStridedBatchedEx(cublasHandle_t handle, int transa, int transb, int m, int n, int k, const void* alpha,
                               const void* a, cudaDataType a_type, int lda, long long stride_a, const void* b,
                               cudaDataType b_type, int ldb, long long stride_b, const void* beta, void* c, cudaDataType c_type,
                               int ldc, long long stride_c, int batches, int compute, int algo) {
  if (!live(handle)) return kNotInitialized;
  if (compute != kCompute32F && compute != kCompute32FPedantic) {
    fprintf(stderr, "fusedopt cuBLAS double: cublasGemmStridedBatchedEx with cublasComputeType_t %d is not emulated (only"
            " CUBLAS_COMPUTE_32F and CUBLAS_COMPUTE_32F_PEDANTIC)\n", compute);
    return kNotSupported;
  }
  if (!(algo >= kGemmAlgoDefault && algo <= kGemmAlgoLast) && !(algo >= kGemmTensorOpFirst && algo <= kGemmTensorOpLast)) {
    return kNotSupported;  // every valid algorithm computes the same here
  }
  return gemm("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, a, a_type, lda, stride_a, b, b_type, ldb,
              stride_b, beta, c, c_type, ldc, stride_c, batches);
}

}  // extern "C"
