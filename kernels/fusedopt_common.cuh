// Shared definitions for every fusedopt kernel family.
//
// Numerics contract (see README "Numerics"): every kernel performs exactly the operations of the
// Java reference (io.fusedopt.cpu.ReferenceKernels), in the same order, each rounded once to
// float32. Multiply-adds that are fused are written as __fmaf_rn; every other operation uses the
// explicit round-to-nearest intrinsics so that no compiler contraction or approximation can
// change a result. The build also passes -fmad=false -prec-div=true -prec-sqrt=true -ftz=false.
#pragma once

// Bit flags, mirrored by io.fusedopt.internal.KernelFlags. Constant for a launch (warp-uniform).
#define FO_MAXIMIZE        (1 << 0)
#define FO_L2_DECAY        (1 << 1)
#define FO_DECOUPLED_DECAY (1 << 2)
#define FO_NESTEROV        (1 << 3)
#define FO_FIRST_STEP      (1 << 4)
#define FO_AMSGRAD         (1 << 5)
#define FO_CENTERED        (1 << 6)
#define FO_MOMENTUM        (1 << 7)

// 64-bit grid-stride loop: correct for tensors of more than 2^31 elements.
#define FO_FOR_EACH_ELEMENT(i, n)                                                        \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);          \
       i += (long long)blockDim.x * gridDim.x)

// The gradient as every family sees it: negated for maximize, then plus weight_decay * param
// for L2 weight decay (PyTorch's order).
__device__ __forceinline__ float fo_effective_grad(float g, float p, float weight_decay, int flags) {
  if (flags & FO_MAXIMIZE) g = -g;
  if (flags & FO_L2_DECAY) g = __fmaf_rn(weight_decay, p, g);
  return g;
}

// max that propagates NaN from either side (Java: ReferenceKernels.maxPropagatingNaN).
__device__ __forceinline__ float fo_max_nan(float current, float candidate) {
  return (candidate > current || candidate != candidate) ? candidate : current;
}

// Storage conversions (mirrored by io.fusedopt.internal.Conversions): round to nearest even,
// subnormals kept, NaN to the canonical 0x7FFF; widening is exact.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float fo_load(float v) { return v; }
__device__ __forceinline__ float fo_load(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float fo_load(__half v) { return __half2float(v); }

__device__ __forceinline__ void fo_store(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void fo_store(__nv_bfloat16* dst, float v) { *dst = __float2bfloat16_rn(v); }
__device__ __forceinline__ void fo_store(__half* dst, float v) { *dst = __float2half_rn(v); }
