// Force-included (g++ -include) into every kernels/*.cu compiled for the emulator: what nvcc gives
// a kernel, as plain host C++. The kernels compile unchanged.
//
// Arithmetic: every intrinsic the kernels use is one correctly rounded IEEE operation on x86-64
// (SSE scalar arithmetic, sqrt, glibc/FMA3 fmaf; the build passes -ffp-contract=off and the
// emulator runs kernels with round-to-nearest and subnormals kept), so results are bit-exact with
// the device's __*_rn intrinsics. The 16-bit conversions are the toolkit's own host paths.
#pragma once
#include <math.h>
#include <string.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

// ---- Qualifiers ----
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __noinline__
#ifdef FO_EMU_SCAN_KERNELS
// Preprocessing pass of the build: marks each kernel so that build.sh can list their names.
#define __global__ FO_EMU_KERNEL_MARK
#else
#define __global__ __attribute__((used))
#endif
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
// Blocks run one at a time and the threads of a block share one OS thread, so one static instance
// per variable is the block's shared memory. The section lets the emulator find it, refill it with
// NaN before every block and allow kernel accesses to it.
#define __shared__ static __attribute__((section("fo_emu_shared")))

// ---- Built-in variables: set by the emulator for the thread that runs ----
#define FO_EMU_KERNEL_UNIT
#include "builtins.h"
#define threadIdx (fo_emu_builtins.threadIdx)
#define blockIdx (fo_emu_builtins.blockIdx)
#define blockDim (fo_emu_builtins.blockDim)
#define gridDim (fo_emu_builtins.gridDim)

// A real barrier across the block's threads; reports threads of one block that wait at
// different barriers (or that exited while others wait).
extern "C" void fo_emu_syncthreads(const char* file, int line);
#define __syncthreads() fo_emu_syncthreads(__FILE__, __LINE__)

// ---- Atomics ----
// The threads of the emulator take turns on one OS thread, so a read-modify-write is atomic as
// written. The emulator checks the access and records it as atomic: atomics on one address do not
// conflict with each other, only with plain accesses of other threads (shared memory) or blocks
// (global memory). Not inlined and not instrumented, so the access is not also a plain one.
extern "C" void fo_emu_atomic_access(const void* address, size_t bytes, const void* code);
template <typename T>
struct FoEmuOperand {  // the value's type follows the address's, as CUDA's overloads convert
  using type = T;
};
#define FO_EMU_ATOMIC(name, result)                                                                      \
  template <typename T>                                                                                \
  __attribute__((noinline, no_sanitize_thread, no_sanitize_undefined)) T name(T* address,               \
                                                                              typename FoEmuOperand<T>::type value) { \
    fo_emu_atomic_access(address, sizeof(T), __builtin_return_address(0));                              \
    const T old = *address;                                                                             \
    *address = (result);                                                                                \
    return old;                                                                                         \
  }
FO_EMU_ATOMIC(atomicAdd, old + value)
FO_EMU_ATOMIC(atomicSub, old - value)
FO_EMU_ATOMIC(atomicExch, value)
FO_EMU_ATOMIC(atomicMin, value < old ? value : old)
FO_EMU_ATOMIC(atomicMax, value > old ? value : old)
FO_EMU_ATOMIC(atomicAnd, old & value)
FO_EMU_ATOMIC(atomicOr, old | value)
FO_EMU_ATOMIC(atomicXor, old ^ value)
#undef FO_EMU_ATOMIC
template <typename T>
__attribute__((noinline, no_sanitize_thread, no_sanitize_undefined)) T atomicCAS(T* address, typename FoEmuOperand<T>::type compare,
                                                                                 typename FoEmuOperand<T>::type value) {
  fo_emu_atomic_access(address, sizeof(T), __builtin_return_address(0));
  const T old = *address;
  *address = old == compare ? value : old;
  return old;
}

// ---- Float32 intrinsics: one IEEE operation each, round to nearest even ----
// A NaN result has the GPU's bits: an H200 (2026-12-04, DriverQuestions) wrote 0x7FFFFFFF for every
// float32 NaN an operation made, generated (inf - inf) or carried from an operand with a payload,
// where x86 gives 0xFFC00000 or keeps the payload.
static inline float fo_emu_gpu_nan(float x) {
  if (x == x) return x;
  const unsigned int canonical = 0x7FFFFFFFu;
  float nan;
  memcpy(&nan, &canonical, sizeof nan);
  return nan;
}
static inline float __fmaf_rn(float a, float b, float c) { return fo_emu_gpu_nan(fmaf(a, b, c)); }
static inline float __fmul_rn(float a, float b) { return fo_emu_gpu_nan(a * b); }
static inline float __fadd_rn(float a, float b) { return fo_emu_gpu_nan(a + b); }
static inline float __fsub_rn(float a, float b) { return fo_emu_gpu_nan(a - b); }
static inline float __fdiv_rn(float a, float b) { return fo_emu_gpu_nan(a / b); }
static inline float __fsqrt_rn(float a) { return fo_emu_gpu_nan(sqrtf(a)); }

// ---- Double intrinsics ----
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline float __double2float_rn(double a) { return (float)a; }
static inline double __ll2double_rn(long long a) { return (double)a; }

// ---- Integer intrinsics ----
// The high 32 bits of the 64-bit product (Philox's mulhi).
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
  return (unsigned int)(((unsigned long long)a * b) >> 32);
}

// ---- Bit casts ----
static inline float __int_as_float(int bits) { float f; memcpy(&f, &bits, sizeof f); return f; }
static inline int __float_as_int(float f) { int bits; memcpy(&bits, &f, sizeof bits); return bits; }
static inline double __longlong_as_double(long long bits) { double d; memcpy(&d, &bits, sizeof d); return d; }
static inline long long __double_as_longlong(double d) { long long bits; memcpy(&bits, &d, sizeof bits); return bits; }
