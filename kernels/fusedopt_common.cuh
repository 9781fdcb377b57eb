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

// ---- The segment table: one launch updates every tensor of a kernel kind ----
// Mirrored by io.fusedopt.internal.SegmentTable (chunking) and io.fusedopt.cuda.DeviceSegmentTable
// (byte layout). Built once, kept in device memory.

// Groups per launch: their scalars travel by value in the kernel's parameter block.
#define FO_MAX_GROUPS 32
// Elements per chunk; a block updates one chunk at a time (grid-stride over chunks).
#define FO_CHUNK_ELEMENTS (1LL << 16)

struct FoTensor {          // 64 bytes
  float* param;            //  0
  const float* grad;       //  8
  float* state[3];         // 16, 24, 32: the kernel's state slots; null where unused
  long long length;        // 40
  int group;               // 48: index into the launch's per-group scalars and flags
  int vector_ok;           // 52: every operand has the same misalignment modulo 16 bytes
  int misalign;            // 56: (address / 4) % 4 shared by the operands (when vector_ok)
  int reserved;            // 60
};

struct FoChunk {           // 16 bytes
  long long start;         // first element of the chunk in its tensor
  int tensor;              // index into the tensor table
  int reserved;
};

// One element: load p, g and the used state slots, apply op (pure float32 arithmetic), store.
template <int SLOTS, typename Op>
__device__ __forceinline__ void fo_update_scalar(const FoTensor& t, long long k, const Op& op) {
  float p = t.param[k];
  float st[3] = {0.f, 0.f, 0.f};
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) st[j] = t.state[j][k];
  op(p, t.grad[k], st);
  t.param[k] = p;
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) t.state[j][k] = st[j];
}

// Four elements starting at a 16-byte boundary of every operand: 16-byte loads and stores.
template <int SLOTS, typename Op>
__device__ __forceinline__ void fo_update_vector(const FoTensor& t, long long k, const Op& op) {
  float4 p = *reinterpret_cast<const float4*>(t.param + k);
  float4 g = *reinterpret_cast<const float4*>(t.grad + k);
  float4 st[3];
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) st[j] = *reinterpret_cast<const float4*>(t.state[j] + k);
  float a[3], b[3], c[3], d[3];
#pragma unroll
  for (int j = 0; j < 3; j++) {
    a[j] = j < SLOTS && t.state[j] ? st[j].x : 0.f;
    b[j] = j < SLOTS && t.state[j] ? st[j].y : 0.f;
    c[j] = j < SLOTS && t.state[j] ? st[j].z : 0.f;
    d[j] = j < SLOTS && t.state[j] ? st[j].w : 0.f;
  }
  op(p.x, g.x, a);
  op(p.y, g.y, b);
  op(p.z, g.z, c);
  op(p.w, g.w, d);
  *reinterpret_cast<float4*>(t.param + k) = p;
#pragma unroll
  for (int j = 0; j < SLOTS; j++)
    if (t.state[j]) *reinterpret_cast<float4*>(t.state[j] + k) = make_float4(a[j], b[j], c[j], d[j]);
}

// Elements [from, to) of one tensor by one block: when the operands allow it, a scalar head up to
// the first 16-byte boundary, 16-byte vectors, and a scalar tail; otherwise scalar throughout.
// Which path an element takes never changes its arithmetic.
template <int SLOTS, typename Op>
__device__ __forceinline__ void fo_update_range(const FoTensor& t, long long from, long long to, const Op& op) {
  long long scalar_from = from;
  if (t.vector_ok) {
    long long first = from + ((4 - ((from + t.misalign) & 3)) & 3);
    if (first > to) first = to;
    for (long long k = from + threadIdx.x; k < first; k += blockDim.x) fo_update_scalar<SLOTS>(t, k, op);
    long long vectors = (to - first) >> 2;
    for (long long v = threadIdx.x; v < vectors; v += blockDim.x) fo_update_vector<SLOTS>(t, first + 4 * v, op);
    scalar_from = first + 4 * vectors;
  }
  for (long long k = scalar_from + threadIdx.x; k < to; k += blockDim.x) fo_update_scalar<SLOTS>(t, k, op);
}

// The body of every update kernel: blocks stride over the chunks; each chunk's group picks the
// scalars and flags. Launch is the family's parameter block {Scalars s[FO_MAX_GROUPS]; int flags[...]}.
template <int SLOTS, typename Op, typename Launch>
__device__ __forceinline__ void fo_multi_tensor(const FoTensor* __restrict__ tensors,
                                                const FoChunk* __restrict__ chunks, int chunk_count,
                                                const Launch& launch) {
  for (int c = blockIdx.x; c < chunk_count; c += gridDim.x) {
    const FoChunk chunk = chunks[c];
    const FoTensor t = tensors[chunk.tensor];
    long long end = chunk.start + FO_CHUNK_ELEMENTS;
    if (end > t.length) end = t.length;
    const Op op{launch.s[t.group], launch.flags[t.group]};
    fo_update_range<SLOTS>(t, chunk.start, end, op);
  }
}

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
