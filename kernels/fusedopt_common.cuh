// Shared definitions for every fusedopt kernel family.
//
// Numerics contract (see README "Numerics"): every kernel performs exactly the operations of the
// Java reference (io.fusedopt.cpu.ReferenceKernels, io.fusedopt.internal.StepControl), in the same
// order, each rounded once. Multiply-adds that are fused are written as __fmaf_rn; every other
// operation uses the explicit round-to-nearest intrinsics so that no compiler contraction or
// approximation can change a result. The build also passes -fmad=false -prec-div=true
// -prec-sqrt=true -ftz=false.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fusedopt_quant.cuh"

// Bit flags, mirrored by io.fusedopt.internal.KernelFlags. Uniform across an entry of the group
// table (a group's tensors with one step offset, see fusedopt_finalize_step).
#define FO_MAXIMIZE        (1 << 0)
#define FO_L2_DECAY        (1 << 1)
#define FO_DECOUPLED_DECAY (1 << 2)
#define FO_NESTEROV        (1 << 3)
#define FO_FIRST_STEP      (1 << 4)
#define FO_AMSGRAD         (1 << 5)
#define FO_CENTERED        (1 << 6)
#define FO_MOMENTUM        (1 << 7)
#define FO_UNSCALE         (1 << 8)   // set by the finalize kernel: g = g * inv_grad_scale
#define FO_CLIP            (1 << 9)   // set by the finalize kernel: g = g * clip_coef
#define FO_STEP_SIZE_FORM  (1 << 10)  // Adam: read by the scalar computation only
#define FO_STOCHASTIC_ROUNDING (1 << 11)  // a 16-bit param without a master is rounded stochastically
#define FO_ALGORITHM_0     (1 << 16)  // the first of 8 bits an algorithm uses for its own options

// Storage formats, mirrored by io.fusedopt.Precision.code().
#define FO_F32  0
#define FO_BF16 1
#define FO_F16  2
// A state_dtype only (io.fusedopt.internal.QuantizedBuffer): every state slot is 8-bit blockwise
// (fusedopt_quant.cuh); bit 8 + j of state_dtype says that slot j uses the signed code map, else
// the unsigned one. Read by the _q8 entry points only.
#define FO_Q8   3
#define FO_Q8_SIGNED_SHIFT 8

// 64-bit grid-stride loop: correct for tensors of more than 2^31 elements.
#define FO_FOR_EACH_ELEMENT(i, n)                                                        \
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);          \
       i += (long long)blockDim.x * gridDim.x)

// ---- The segment table: one launch updates every tensor of a kernel kind ----
// Mirrored by io.fusedopt.internal.SegmentTable (chunking) and io.fusedopt.cuda.DeviceSegmentTable
// (byte layout). Built once, kept in device memory.

// Elements per chunk; a block updates one chunk at a time (grid-stride over chunks).
#define FO_CHUNK_ELEMENTS (1LL << 16)
// Threads of the gradient-statistics and finalize blocks: the lanes of the deterministic
// reduction (io.fusedopt.internal.GradientStatistics.LANES).
#define FO_LANES 256
// Floats reserved per entry in the per-step scalar table and in the hyper-parameter table.
#define FO_SCALAR_STRIDE 16
#define FO_HYPER_STRIDE 16

struct FoTensor {          // 80 bytes
  void* param;             //  0: the model's copy (any format); with a master, written from it
  const void* grad;        //  8
  void* state[3];          // 16, 24, 32: the kernel's state slots; null where unused
  float* master;           // 40: fp32 master weights, or null
  long long length;        // 48
  int group;               // 56: the tensor's entry (its group and step offset) in the per-entry scalars and flags
  int vector_phase;        // 60: k % W at which every operand is W-element aligned; -1: scalar only
  int param_dtype;         // 64: FO_F32, FO_BF16, FO_F16
  int grad_dtype;          // 68
  int state_dtype;         // 72
  int rounding_stream;     // 76: the param's random stream for stochastic rounding (a hash of its name)
};

// What the finalize kernel writes per entry for the update kernels, from which each computes its
// family's scalars (Scalars::of): the entry's own step and the step's learning rate.
struct FoEntryStep {       // 16 bytes
  long long step;          // the entry's own step t (>= 1)
  float lr;                // the group's learning rate for this step (scheduled or not)
  int reserved;
};

struct FoChunk {           // 16 bytes
  long long start;         // first element of the chunk in its tensor
  int tensor;              // index into the tensor table
  int reserved;
};

// The control block: one per optimizer, in device memory, mirrored by
// io.fusedopt.internal.StepControl. The host writes the inputs between steps (and the loss scaler's
// state only when it restores one); the finalize kernel writes the rest. No kernel argument changes
// from step to step, so a step can be graph-captured.
struct FoControl {                 // 120 bytes
  long long step;                  //  0: applied steps (the t of the last applied step)
  long long skipped_steps;         //  8: steps skipped for a non-finite gradient
  double grad_sq_sum;              // 16: last step: sum of squares of the unscaled gradient
  float inv_grad_scale;            // 24: 1 / loss scale for the next step's gradient: an input with a fixed
                                   //     scale, written by the finalize kernel with a dynamic one
  float max_grad_norm;             // 28: input: > 0 clips the global norm to it
  float grad_norm;                 // 32: last step: sqrt(grad_sq_sum) as float32
  float clip_coef;                 // 36: last step: the factor the gradient was multiplied by
  int check_grads;                 // 40: input: the statistics pass runs
  int skip_nonfinite;              // 44: input: a non-finite gradient skips the step
  int found_nonfinite;             // 48: last step found a non-finite gradient (when checked)
  int skip;                        // 52: this step updates nothing
  float step_inv_grad_scale;       // 56: the inverse scale this step's updates use (inv_grad_scale as the step
                                   //     began; the finalize kernel may change inv_grad_scale for the next)
  int dynamic_scaling;             // 60: input: the finalize kernel updates loss_scale by GradScaler's rule
  float loss_scale;                // 64: dynamic: the scale of the next step's gradient
  int growth_tracker;              // 68: dynamic: clean steps since the last growth or backoff
  int growth_interval;             // 72: input (dynamic): clean steps before the scale grows
  int reserved;                    // 76
  double growth_factor;            // 80: input (dynamic), a double as GradScaler's: the scale is
  double backoff_factor;           // 88: input (dynamic)   multiplied by it in double, rounded once
  long long scale_growths;         // 96: dynamic: times the scale grew
  long long scale_backoffs;        // 104: dynamic: times the scale backed off
  unsigned long long rounding_seed; // 112: input: the key of stochastic rounding's random bits
};

// ---- Storage access: loads widen exactly, stores round to nearest even ----
// Mirrored by io.fusedopt.internal.Conversions: subnormals kept, NaN to the canonical 0x7FFF.

__device__ __forceinline__ float fo_load(float v) { return v; }
__device__ __forceinline__ float fo_load(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float fo_load(__half v) { return __half2float(v); }

__device__ __forceinline__ void fo_store(float* dst, float v) { *dst = v; }
__device__ __forceinline__ void fo_store(__nv_bfloat16* dst, float v) { *dst = __float2bfloat16_rn(v); }
__device__ __forceinline__ void fo_store(__half* dst, float v) { *dst = __float2half_rn(v); }

__device__ __forceinline__ float fo_widen16(unsigned short bits, int dtype) {
  return dtype == FO_BF16 ? __bfloat162float(__ushort_as_bfloat16(bits)) : __half2float(__ushort_as_half(bits));
}
__device__ __forceinline__ unsigned short fo_narrow16(float v, int dtype) {
  return dtype == FO_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
}

// One element of an operand. MIXED=false: every operand is float32 (the dtype is not read).
template <bool MIXED>
__device__ __forceinline__ float fo_load_at(const void* base, int dtype, long long k) {
  if (!MIXED || dtype == FO_F32) return static_cast<const float*>(base)[k];
  return fo_widen16(static_cast<const unsigned short*>(base)[k], dtype);
}
template <bool MIXED>
__device__ __forceinline__ void fo_store_at(void* base, int dtype, long long k, float v) {
  if (!MIXED || dtype == FO_F32) static_cast<float*>(base)[k] = v;
  else static_cast<unsigned short*>(base)[k] = fo_narrow16(v, dtype);
}

// W consecutive elements from a W-aligned element index: float32 as W/4 16-byte loads, 16-bit
// formats as W/8 16-byte loads (W is 4 for float32-only kernels, 8 for mixed ones).
template <int W>
__device__ __forceinline__ void fo_load_vec(const void* base, int dtype, long long k, float (&out)[W]) {
  if (dtype == FO_F32) {
    const float4* src = reinterpret_cast<const float4*>(static_cast<const float*>(base) + k);
#pragma unroll
    for (int i = 0; i < W / 4; i++) {
      float4 v = src[i];
      out[4 * i] = v.x; out[4 * i + 1] = v.y; out[4 * i + 2] = v.z; out[4 * i + 3] = v.w;
    }
  } else {
    const uint4* src = reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(base) + k);
#pragma unroll
    for (int i = 0; i < W / 8; i++) {
      uint4 v = src[i];
      unsigned int w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; j++) {
        out[8 * i + 2 * j] = fo_widen16((unsigned short)(w[j] & 0xFFFFu), dtype);
        out[8 * i + 2 * j + 1] = fo_widen16((unsigned short)(w[j] >> 16), dtype);
      }
    }
  }
}
template <int W>
__device__ __forceinline__ void fo_store_vec(void* base, int dtype, long long k, const float (&in)[W]) {
  if (dtype == FO_F32) {
    float4* dst = reinterpret_cast<float4*>(static_cast<float*>(base) + k);
#pragma unroll
    for (int i = 0; i < W / 4; i++) dst[i] = make_float4(in[4 * i], in[4 * i + 1], in[4 * i + 2], in[4 * i + 3]);
  } else {
    uint4* dst = reinterpret_cast<uint4*>(static_cast<unsigned short*>(base) + k);
#pragma unroll
    for (int i = 0; i < W / 8; i++) {
      unsigned int w[4];
#pragma unroll
      for (int j = 0; j < 4; j++) {
        w[j] = (unsigned int)fo_narrow16(in[8 * i + 2 * j], dtype)
             | ((unsigned int)fo_narrow16(in[8 * i + 2 * j + 1], dtype) << 16);
      }
      dst[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}

// ---- Stochastic rounding of 16-bit params (io.fusedopt.internal.Philox, Conversions.narrowStochastic) ----

// Philox4x32-10 (Random123's philox4x32_R with R = 10): c is the counter in, the block out.
__device__ __forceinline__ void fo_philox(unsigned int (&c)[4], unsigned int k0, unsigned int k1) {
#pragma unroll
  for (int round = 0; round < 10; round++) {
    const unsigned int hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
    const unsigned int hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
    const unsigned int n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// The Philox block of elements 4q .. 4q+3 of a random stream at a step (Philox.word's counter).
__device__ __forceinline__ void fo_random_block(unsigned long long seed, long long step, int stream, long long quad,
                                                unsigned int (&out)[4]) {
  out[0] = (unsigned int)quad;
  out[1] = (unsigned int)((unsigned long long)quad >> 32);
  out[2] = (unsigned int)stream;
  out[3] = (unsigned int)step;
  fo_philox(out, (unsigned int)seed, (unsigned int)(seed >> 32));
}

// The distance from the finite 16-bit value bits to the next one away from zero, as if the exponent
// range went on (Conversions.spacingAbove): 2^(max(exponent, 1) - bias - mantissa bits).
__device__ __forceinline__ double fo_spacing_above(unsigned short bits, int dtype) {
  const int mantissa_bits = dtype == FO_BF16 ? 7 : 10;
  const int bias = dtype == FO_BF16 ? 127 : 15;
  int exponent = (bits & 0x7FFF) >> mantissa_bits;
  if (exponent < 1) exponent = 1;
  return __longlong_as_double((long long)(exponent - bias - mantissa_bits + 1023) << 52);
}

// v rounded to bf16/fp16 stochastically with 32 random bits (Conversions.narrowStochastic): NaN to
// the canonical NaN, exact values kept, else the neighbour away from zero with probability frac.
__device__ __forceinline__ unsigned short fo_narrow16_stochastic(float v, int dtype, unsigned int random) {
  if (v != v) return 0x7FFF;
  const unsigned short nearest = fo_narrow16(v, dtype);
  const float nearest_value = fo_widen16(nearest, dtype);
  if (nearest_value == v) return nearest;
  const float magnitude = fabsf(v);
  const unsigned short down = fabsf(nearest_value) > magnitude ? (unsigned short)(nearest - 1) : nearest;
  const double down_magnitude = fabsf(fo_widen16(down, dtype));
  const double frac = __ddiv_rn(__dsub_rn((double)magnitude, down_magnitude), fo_spacing_above(down, dtype));
  return (double)random < __dmul_rn(frac, 4294967296.0) ? (unsigned short)(down + 1) : down;
}

// What a step's stores need for stochastic rounding: the seed and the optimizer's step counter.
struct FoRounding {
  unsigned long long seed;
  long long step;
  // Whether tensor t's param is rounded stochastically in this entry (flags).
  __device__ __forceinline__ bool applies(const FoTensor& t, int flags) const {
    return (flags & FO_STOCHASTIC_ROUNDING) && t.param_dtype != FO_F32 && !t.master;
  }
};

// The random words of one tensor's elements, taken in increasing order (Philox.word): element k
// draws word k % 4 of the block of quad k / 4, whatever element a vector begins at (a vector
// phase need not be a multiple of 4). The last block is kept for the next element of its quad.
struct FoRandomWords {
  long long quad = -1;
  unsigned int block[4];
  __device__ __forceinline__ unsigned int at(const FoRounding& rounding, const FoTensor& t, long long k) {
    if ((k >> 2) != quad) {
      quad = k >> 2;
      fo_random_block(rounding.seed, rounding.step, t.rounding_stream, quad, block);
    }
    const int word = (int)(k & 3);  // a select, not an index: block stays in registers in a rolled loop
    return word == 0 ? block[0] : word == 1 ? block[1] : word == 2 ? block[2] : block[3];
  }
};

// The gradient before the algorithm sees it: unscaled by the loss scale, then clipped
// (io.fusedopt.internal.StepControl.prepareGrad). Each multiply is skipped when its factor is 1.
struct FoGradPrep {
  float inv_grad_scale;
  float clip_coef;
  __device__ __forceinline__ float operator()(float g, int flags) const {
    if (flags & FO_UNSCALE) g = __fmul_rn(g, inv_grad_scale);
    if (flags & FO_CLIP) g = __fmul_rn(g, clip_coef);
    return g;
  }
};

// Reduces ROWS rows of FO_LANES values at once into each row's lane 0 by a pairwise tree, halving
// the stride: lane l combines itself with lane l + offset (combine(lanes[l], lanes[l + offset])).
// Every thread of the block must call it; it begins and ends with a barrier, so the lanes may be
// written just before and lane 0 read just after.
template <int ROWS, typename T, typename Combine>
__device__ __forceinline__ void fo_tree_reduce(T (*lanes)[FO_LANES], const Combine& combine) {
  __syncthreads();
#pragma unroll
  for (int offset = FO_LANES / 2; offset > 0; offset >>= 1) {
    if (threadIdx.x < offset) {
#pragma unroll
      for (int r = 0; r < ROWS; r++) lanes[r][threadIdx.x] = combine(lanes[r][threadIdx.x], lanes[r][threadIdx.x + offset]);
    }
    __syncthreads();
  }
}

// The combinations of fo_tree_reduce: a double sum rounded once per addition; an exact float max
// (for values that are never NaN).
struct FoSum {
  __device__ __forceinline__ double operator()(double a, double b) const { return __dadd_rn(a, b); }
};
struct FoMax {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Fixed-order sum of the FO_LANES values in lanes (GradientStatistics.treeSum).
__device__ __forceinline__ void fo_tree_sum(double* lanes) {
  fo_tree_reduce<1>(reinterpret_cast<double (*)[FO_LANES]>(lanes), FoSum{});
}

// ---- The elementwise update over the segment table ----

// The param of element k as the update reads it: the master weight when there is one.
template <bool MIXED>
__device__ __forceinline__ float fo_load_param(const FoTensor& t, long long k) {
  return (MIXED && t.master) ? t.master[k] : fo_load_at<MIXED>(t.param, t.param_dtype, k);
}

// The updated param of element k stored: the master (when there is one), then the model's copy,
// rounded to nearest or, for a 16-bit param without a master when the entry asks, stochastically.
template <bool MIXED>
__device__ __forceinline__ void fo_store_param(const FoTensor& t, long long k, float p,
                                               const FoRounding& rounding, int flags) {
  if (MIXED && t.master) t.master[k] = p;
  if (MIXED && rounding.applies(t, flags)) {
    unsigned int block[4];
    fo_random_block(rounding.seed, rounding.step, t.rounding_stream, k >> 2, block);
    static_cast<unsigned short*>(t.param)[k] = fo_narrow16_stochastic(p, t.param_dtype, block[k & 3]);
  } else {
    fo_store_at<MIXED>(t.param, t.param_dtype, k, p);
  }
}

// The gradient of element k as the algorithm sees it (FoGradPrep: unscaled, clipped).
template <bool MIXED>
__device__ __forceinline__ float fo_load_grad(const FoTensor& t, long long k, const FoGradPrep& prep, int flags) {
  return prep(fo_load_at<MIXED>(t.grad, t.grad_dtype, k), flags);
}

// One element: load (the master weight when there is one), prepare the gradient, apply op
// (pure float32 arithmetic), store (the master and the rounded model copy).
template <int SLOTS, bool MIXED, typename Op>
__device__ __forceinline__ void fo_update_scalar(const FoTensor& t, long long k, const Op& op,
                                                 const FoGradPrep& prep, const FoRounding& rounding, int flags) {
  float p = fo_load_param<MIXED>(t, k);
  float g = fo_load_grad<MIXED>(t, k, prep, flags);
  float st[3] = {0.f, 0.f, 0.f};
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) st[j] = fo_load_at<MIXED>(t.state[j], t.state_dtype, k);
  op(p, g, st);
  fo_store_param<MIXED>(t, k, p, rounding, flags);
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) fo_store_at<MIXED>(t.state[j], t.state_dtype, k, st[j]);
}

// W elements from a W-aligned element index of every operand: 16-byte loads and stores.
template <int SLOTS, bool MIXED, typename Op>
__device__ __forceinline__ void fo_update_vector(const FoTensor& t, long long k, const Op& op,
                                                 const FoGradPrep& prep, const FoRounding& rounding, int flags) {
  constexpr int W = MIXED ? 8 : 4;
  const int param_dtype = MIXED ? t.param_dtype : FO_F32;  // constant-folded for float32-only kernels
  const int grad_dtype = MIXED ? t.grad_dtype : FO_F32;
  const int state_dtype = MIXED ? t.state_dtype : FO_F32;
  const bool master = MIXED && t.master;
  float p[W], g[W], st[3][W];
  if (master) fo_load_vec<W>(t.master, FO_F32, k, p);
  else fo_load_vec<W>(t.param, param_dtype, k, p);
  fo_load_vec<W>(t.grad, grad_dtype, k, g);
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) fo_load_vec<W>(t.state[j], state_dtype, k, st[j]);
#pragma unroll
  for (int i = 0; i < W; i++) {
    float s[3];
#pragma unroll
    for (int j = 0; j < 3; j++) s[j] = (j < SLOTS && t.state[j]) ? st[j][i] : 0.f;
    op(p[i], prep(g[i], flags), s);
#pragma unroll
    for (int j = 0; j < SLOTS; j++) st[j][i] = s[j];
  }
  if (master) fo_store_vec<W>(t.master, FO_F32, k, p);
  if (MIXED && rounding.applies(t, flags)) {
    unsigned short rounded[W];
    FoRandomWords random;
#pragma unroll
    for (int i = 0; i < W; i++) rounded[i] = fo_narrow16_stochastic(p[i], t.param_dtype, random.at(rounding, t, k + i));
    uint4* dst = reinterpret_cast<uint4*>(static_cast<unsigned short*>(t.param) + k);
#pragma unroll
    for (int i = 0; i < W / 8; i++) {
      unsigned int w[4];
#pragma unroll
      for (int j = 0; j < 4; j++) w[j] = (unsigned int)rounded[8 * i + 2 * j] | ((unsigned int)rounded[8 * i + 2 * j + 1] << 16);
      dst[i] = make_uint4(w[0], w[1], w[2], w[3]);
    }
  } else {
    fo_store_vec<W>(t.param, param_dtype, k, p);
  }
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) fo_store_vec<W>(t.state[j], state_dtype, k, st[j]);
}

// Elements [from, to) of one tensor by one block: when the operands allow it, a scalar head up to
// the first element of the vector phase, W-element vectors, and a scalar tail; otherwise scalar
// throughout. Which path an element takes never changes its arithmetic.
template <int SLOTS, bool MIXED, typename Op>
__device__ __forceinline__ void fo_update_range(const FoTensor& t, long long from, long long to, const Op& op,
                                                const FoGradPrep& prep, const FoRounding& rounding, int flags) {
  constexpr int W = MIXED ? 8 : 4;
  long long scalar_from = from;
  if (t.vector_phase >= 0) {
    long long first = from + ((t.vector_phase - from) & (W - 1));
    if (first > to) first = to;
    for (long long k = from + threadIdx.x; k < first; k += blockDim.x) fo_update_scalar<SLOTS, MIXED>(t, k, op, prep, rounding, flags);
    long long vectors = (to - first) / W;
    for (long long v = threadIdx.x; v < vectors; v += blockDim.x) fo_update_vector<SLOTS, MIXED>(t, first + W * v, op, prep, rounding, flags);
    scalar_from = first + W * vectors;
  }
  for (long long k = scalar_from + threadIdx.x; k < to; k += blockDim.x) fo_update_scalar<SLOTS, MIXED>(t, k, op, prep, rounding, flags);
}

// ---- Every operand 16-bit, no master weights: the _narrow entry point ----
// A 16-bit operand moves half the bytes of a float32 one per element, so a block must keep twice
// the elements in flight to reach the same bandwidth. The _mixed entry point widens every element
// of its 8-element vectors at once, and the registers that takes bound the threads an SM keeps
// resident (an H200 measured 47% of the copy bandwidth for bf16 Adam through it). Here each
// operand's FO_NARROW_ELEMENTS elements stay packed as they were loaded, two to a word, and a
// rolled loop takes one word of every operand at a time, updates its two elements in order (op's
// arithmetic, as fo_update_scalar's) and rotates the result words in at the end of each array:
// after FO_NARROW_WORDS turns every array holds its results in order, ready to store.
#define FO_NARROW_WORDS 8
#define FO_NARROW_ELEMENTS (2 * FO_NARROW_WORDS)

__device__ __forceinline__ void fo_load_words(const void* base, long long k, unsigned int (&w)[FO_NARROW_WORDS]) {
  const uint4* src = reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(base) + k);
#pragma unroll
  for (int i = 0; i < FO_NARROW_WORDS / 4; i++) {
    const uint4 v = src[i];
    w[4 * i] = v.x; w[4 * i + 1] = v.y; w[4 * i + 2] = v.z; w[4 * i + 3] = v.w;
  }
}
__device__ __forceinline__ void fo_store_words(void* base, long long k, const unsigned int (&w)[FO_NARROW_WORDS]) {
  uint4* dst = reinterpret_cast<uint4*>(static_cast<unsigned short*>(base) + k);
#pragma unroll
  for (int i = 0; i < FO_NARROW_WORDS / 4; i++) dst[i] = make_uint4(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]);
}
// w = w[1..], next: word 0 is the next to take. Constant indices only, so w stays in registers.
__device__ __forceinline__ void fo_rotate_in(unsigned int (&w)[FO_NARROW_WORDS], unsigned int next) {
#pragma unroll
  for (int i = 0; i < FO_NARROW_WORDS - 1; i++) w[i] = w[i + 1];
  w[FO_NARROW_WORDS - 1] = next;
}

// FO_NARROW_ELEMENTS elements from k, at which every operand is 16-byte aligned.
template <int SLOTS, typename Op>
__device__ __forceinline__ void fo_update_narrow(const FoTensor& t, long long k, const Op& op,
                                                 const FoGradPrep& prep, const FoRounding& rounding, int flags) {
  unsigned int p[FO_NARROW_WORDS], g[FO_NARROW_WORDS], st[3][FO_NARROW_WORDS];
  fo_load_words(t.param, k, p);
  fo_load_words(t.grad, k, g);
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) fo_load_words(t.state[j], k, st[j]);
  const bool stochastic = rounding.applies(t, flags);
  FoRandomWords random;
#pragma unroll 1
  for (int word = 0; word < FO_NARROW_WORDS; word++) {
    unsigned int p_out = 0, st_out[3] = {0u, 0u, 0u};
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int shift = 16 * half;
      float pv = fo_widen16((unsigned short)(p[0] >> shift), t.param_dtype);
      const float gv = fo_widen16((unsigned short)(g[0] >> shift), t.grad_dtype);
      float s[3] = {0.f, 0.f, 0.f};
#pragma unroll
      for (int j = 0; j < SLOTS; j++) if (t.state[j]) s[j] = fo_widen16((unsigned short)(st[j][0] >> shift), t.state_dtype);
      op(pv, prep(gv, flags), s);
      const unsigned short rounded = stochastic
          ? fo_narrow16_stochastic(pv, t.param_dtype, random.at(rounding, t, k + 2 * word + half))
          : fo_narrow16(pv, t.param_dtype);
      p_out |= (unsigned int)rounded << shift;
#pragma unroll
      for (int j = 0; j < SLOTS; j++) st_out[j] |= (unsigned int)fo_narrow16(s[j], t.state_dtype) << shift;
    }
    fo_rotate_in(p, p_out);
    fo_rotate_in(g, 0u);
#pragma unroll
    for (int j = 0; j < SLOTS; j++) fo_rotate_in(st[j], st_out[j]);
  }
  fo_store_words(t.param, k, p);
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (t.state[j]) fo_store_words(t.state[j], k, st[j]);
}

// fo_update_range for the _narrow entry point: a scalar head up to the first element at which
// every operand is 16-byte aligned (the vector phase, 8 elements wide), FO_NARROW_ELEMENTS-element
// vectors, and a scalar tail. Which path an element takes never changes its arithmetic.
template <int SLOTS, typename Op>
__device__ __forceinline__ void fo_update_range_narrow(const FoTensor& t, long long from, long long to, const Op& op,
                                                       const FoGradPrep& prep, const FoRounding& rounding, int flags) {
  long long scalar_from = from;
  if (t.vector_phase >= 0) {
    long long first = from + ((t.vector_phase - from) & 7);
    if (first > to) first = to;
    for (long long k = from + threadIdx.x; k < first; k += blockDim.x) fo_update_scalar<SLOTS, true>(t, k, op, prep, rounding, flags);
    const long long vectors = (to - first) / FO_NARROW_ELEMENTS;
    for (long long v = threadIdx.x; v < vectors; v += blockDim.x) {
      fo_update_narrow<SLOTS>(t, first + FO_NARROW_ELEMENTS * v, op, prep, rounding, flags);
    }
    scalar_from = first + FO_NARROW_ELEMENTS * vectors;
  }
  for (long long k = scalar_from + threadIdx.x; k < to; k += blockDim.x) fo_update_scalar<SLOTS, true>(t, k, op, prep, rounding, flags);
}

// The chunk loop of every pass over the segment table: blocks stride over the chunks, and each
// chunk's entry (group and step offset) picks its flags and step from the tables the finalize
// kernel wrote, and its hyper-parameters, from which Scalars::of computes the family's per-step
// scalars (a few double operations per chunk and thread, the same in every thread, so no
// block-level sharing is needed). Then body(c, tensor index, tensor, from, to, flags, scalars)
// for the chunk's elements [from, to).
template <typename Scalars, typename Body>
__device__ __forceinline__ void fo_for_each_chunk(const FoTensor* __restrict__ tensors,
                                                  const FoChunk* __restrict__ chunks, int chunk_count,
                                                  const float* __restrict__ hyper,
                                                  const FoEntryStep* __restrict__ steps,
                                                  const int* __restrict__ flags, const Body& body) {
  for (int c = blockIdx.x; c < chunk_count; c += gridDim.x) {
    const FoChunk chunk = chunks[c];
    const FoTensor t = tensors[chunk.tensor];
    long long end = chunk.start + FO_CHUNK_ELEMENTS;
    if (end > t.length) end = t.length;
    const int f = flags[t.group];
    const FoEntryStep entry = steps[t.group];
    body(c, chunk.tensor, t, chunk.start, end, f, Scalars::of(hyper + FO_HYPER_STRIDE * t.group, entry.lr, f, entry.step));
  }
}

// The body of every update kernel: nothing when the finalize kernel decided to skip the step;
// else each chunk's elements by fo_update_range (NARROW: fo_update_range_narrow).
//
// LAYERWISE: tensor_sums holds each tensor's two sums of squares (fusedopt_tensor_norms), from
// which Scalars::layer completes the scalars with the tensor's own factor.
template <int SLOTS, bool MIXED, bool LAYERWISE, typename Op, typename Scalars, bool NARROW = false>
__device__ __forceinline__ void fo_multi_tensor(const FoTensor* __restrict__ tensors,
                                                const FoChunk* __restrict__ chunks, int chunk_count,
                                                const FoControl* __restrict__ control,
                                                const float* __restrict__ hyper,
                                                const FoEntryStep* __restrict__ steps,
                                                const int* __restrict__ flags,
                                                const double* __restrict__ tensor_sums) {
  if (control->skip) return;
  const FoGradPrep prep{control->step_inv_grad_scale, control->clip_coef};
  const FoRounding rounding{control->rounding_seed, control->step};
  fo_for_each_chunk<Scalars>(tensors, chunks, chunk_count, hyper, steps, flags,
      [&](int, int tensor, const FoTensor& t, long long from, long long to, int f, Scalars s) {
        if constexpr (LAYERWISE) s.layer(tensor_sums[2 * tensor], tensor_sums[2 * tensor + 1], f);
        if constexpr (NARROW) fo_update_range_narrow<SLOTS>(t, from, to, Op{s, f}, prep, rounding, f);
        else fo_update_range<SLOTS, MIXED>(t, from, to, Op{s, f}, prep, rounding, f);
      });
}

// ---- 8-bit blockwise states (the _q8 entry points) ----
// The same rule as the CPU backends' quantized batches (io.fusedopt.cpu.CpuStepProgram: dequantize
// a block, update it, quantize it back). The layout is io.fusedopt.cuda.DeviceQuantizedBuffer's: a
// quantized slot's pointer is its codes (one byte per element); its absmax (one float per block of
// FO_QUANT_BLOCK) follows at the next 16-byte boundary.
static_assert(FO_LANES == FO_QUANT_BLOCK, "a _q8 block of threads takes one quantization block at a time");

__device__ __forceinline__ float* fo_q8_absmax(void* codes, long long length) {
  return reinterpret_cast<float*>(static_cast<unsigned char*>(codes) + ((length + 15) & ~15LL));
}

// The update of tensors whose state slots are all 8-bit (state_dtype FO_Q8 | signed slots <<
// FO_Q8_SIGNED_SHIFT), any param and grad formats, master weights, stochastic rounding (as the
// _mixed entry point). Launched with FO_QUANT_BLOCK threads: per chunk, per quantization block,
// thread i takes element i: it dequantizes its states, runs op as fo_update_scalar does, stores
// the param; then per slot the block's absmax is the tree max of the new values' magnitudes
// (exact, so the order does not matter), thread 0 stores it, and every thread stores the code of
// its new value. code_maps holds CodeMap.SIGNED's 256 values, then UNSIGNED's; maps (2 x 256) and
// lanes (SLOTS x FO_LANES) are shared memory declared by the entry point (a static local of a
// template lies outside the CUDA emulator's shared-memory section).
template <int SLOTS, typename Op, typename Scalars>
__device__ __forceinline__ void fo_multi_tensor_q8(const FoTensor* __restrict__ tensors,
                                                   const FoChunk* __restrict__ chunks, int chunk_count,
                                                   const FoControl* __restrict__ control,
                                                   const float* __restrict__ hyper,
                                                   const FoEntryStep* __restrict__ steps,
                                                   const int* __restrict__ flags,
                                                   const float* __restrict__ code_maps,
                                                   float (*maps)[FO_QUANT_CODES], float (*lanes)[FO_LANES]) {
  if (control->skip) return;
  for (int i = threadIdx.x; i < 2 * FO_QUANT_CODES; i += blockDim.x) maps[i / FO_QUANT_CODES][i % FO_QUANT_CODES] = code_maps[i];
  __syncthreads();
  const FoGradPrep prep{control->step_inv_grad_scale, control->clip_coef};
  const FoRounding rounding{control->rounding_seed, control->step};
  fo_for_each_chunk<Scalars>(tensors, chunks, chunk_count, hyper, steps, flags,
      [&](int, int, const FoTensor& t, long long from, long long to, int f, const Scalars& s) {
        const Op op{s, f};
        unsigned char* codes[3] = {nullptr, nullptr, nullptr};
        float* absmax[3] = {nullptr, nullptr, nullptr};
        const float* map[3] = {nullptr, nullptr, nullptr};
#pragma unroll
        for (int j = 0; j < SLOTS; j++) {
          if (!t.state[j]) continue;
          codes[j] = static_cast<unsigned char*>(t.state[j]);
          absmax[j] = fo_q8_absmax(t.state[j], t.length);
          map[j] = maps[(t.state_dtype >> (FO_Q8_SIGNED_SHIFT + j)) & 1 ? 0 : 1];
        }
        // from is a multiple of FO_CHUNK_ELEMENTS, so every quantization block lies in one chunk.
        for (long long first = from; first < to; first += FO_QUANT_BLOCK) {
          const long long k = first + threadIdx.x;
          const long long block = first / FO_QUANT_BLOCK;
          const bool inside = k < to;
          float st[3] = {0.f, 0.f, 0.f};
          if (inside) {
            float p = fo_load_param<true>(t, k);
            const float g = fo_load_grad<true>(t, k, prep, f);
#pragma unroll
            for (int j = 0; j < SLOTS; j++) if (codes[j]) st[j] = fo_dequantize(codes[j][k], absmax[j][block], map[j]);
            op(p, g, st);
            fo_store_param<true>(t, k, p, rounding, f);
          }
#pragma unroll
          for (int j = 0; j < SLOTS; j++) lanes[j][threadIdx.x] = inside ? fo_quant_magnitude(st[j]) : 0.f;
          fo_tree_reduce<SLOTS>(lanes, FoMax{});
#pragma unroll
          for (int j = 0; j < SLOTS; j++) {
            if (!codes[j]) continue;
            const float scale = fo_quant_absmax(lanes[j][0]);
            if (threadIdx.x == 0) absmax[j][block] = scale;
            if (inside) codes[j][k] = fo_quantize(st[j], scale, map[j]);
          }
          __syncthreads();  // every thread has read lane 0 before the next block's magnitudes replace it
        }
      });
}

// The entry points of an update kernel: float32 storage only, any storage formats (_mixed), and
// every operand 16-bit without master weights (_narrow: the same arithmetic, more elements in
// flight); FO_QUANTIZED_UPDATE_KERNEL adds the one for 8-bit states.
#define FO_UPDATE_KERNELS(name, SLOTS, Op, Scalars)                                                   \
  extern "C" __global__ void name(const FoTensor* tensors, const FoChunk* chunks, int chunk_count,    \
                                  const FoControl* control, const float* hyper,                        \
                                  const FoEntryStep* steps, const int* flags) {                        \
    fo_multi_tensor<SLOTS, false, false, Op, Scalars>(tensors, chunks, chunk_count, control, hyper, steps, flags, nullptr); \
  }                                                                                                    \
  extern "C" __global__ void name##_mixed(const FoTensor* tensors, const FoChunk* chunks,             \
                                          int chunk_count, const FoControl* control,                   \
                                          const float* hyper, const FoEntryStep* steps,                \
                                          const int* flags) {                                          \
    fo_multi_tensor<SLOTS, true, false, Op, Scalars>(tensors, chunks, chunk_count, control, hyper, steps, flags, nullptr); \
  }                                                                                                    \
  extern "C" __global__ void name##_narrow(const FoTensor* tensors, const FoChunk* chunks,            \
                                           int chunk_count, const FoControl* control,                  \
                                           const float* hyper, const FoEntryStep* steps,               \
                                           const int* flags) {                                         \
    fo_multi_tensor<SLOTS, true, false, Op, Scalars, true>(tensors, chunks, chunk_count, control, hyper, steps, flags, nullptr); \
  }

// The entry point for 8-bit blockwise states, declared beside FO_UPDATE_KERNELS by the families of
// the algorithms that have them (io.fusedopt.internal.Algorithm.hasQuantizedStates): only those, so
// that the other fatbins do not carry code no call reaches.
#define FO_QUANTIZED_UPDATE_KERNEL(name, SLOTS, Op, Scalars)                                          \
  extern "C" __global__ void name##_q8(const FoTensor* tensors, const FoChunk* chunks,                \
                                       int chunk_count, const FoControl* control,                      \
                                       const float* hyper, const FoEntryStep* steps,                   \
                                       const int* flags, const float* code_maps) {                     \
    __shared__ float maps[2][FO_QUANT_CODES];                                                          \
    __shared__ float lanes[SLOTS > 0 ? SLOTS : 1][FO_LANES];                                           \
    fo_multi_tensor_q8<SLOTS, Op, Scalars>(tensors, chunks, chunk_count, control, hyper, steps, flags, \
                                           code_maps, maps, lanes);                                    \
  }

// ---- Layer-wise updates (LAMB, LARS): per-tensor norms, then the update ----
// Mirrored by io.fusedopt.internal.LayerwiseKernel and io.fusedopt.internal.TensorNorms. A step
// runs three launches per layer-wise batch, after the finalize kernel:
//   1. NAME_norms: per chunk, the sums of squares, in double and in the lane order of
//      fusedopt_grad_stats, of the two values NormOp gives per element (LAMB: the parameter and
//      its update; LARS: the parameter and the gradient), into chunk_sums[2c] and [2c + 1];
//      no tensor is written;
//   2. fusedopt_tensor_norms (control.cu): per tensor, the sums of its chunks' partial sums;
//   3. NAME: the update, whose Scalars::layer(sum_a, sum_b, flags) adds the tensor's own factor.

// One element of the norm pass: the operands as the update reads them, NormOp's two values.
template <int SLOTS, bool MIXED, typename NormOp>
__device__ __forceinline__ void fo_norm_element(const FoTensor& t, long long k, const NormOp& op,
                                                const FoGradPrep& prep, int flags, double& sum_a, double& sum_b) {
  const float p = fo_load_param<MIXED>(t, k);
  const float g = fo_load_grad<MIXED>(t, k, prep, flags);
  float st[3] = {0.f, 0.f, 0.f};
#pragma unroll
  for (int j = 0; j < SLOTS; j++) if (NormOp::READS_STATE && t.state[j]) st[j] = fo_load_at<MIXED>(t.state[j], t.state_dtype, k);
  float a, b;
  op(p, g, st, a, b);
  const double x = a, y = b;
  sum_a = __dadd_rn(sum_a, __dmul_rn(x, x));
  sum_b = __dadd_rn(sum_b, __dmul_rn(y, y));
}

// The norm pass over the segment table: lane l of a chunk takes its elements start+l,
// start+l+FO_LANES, ... in order (one element at a time, whatever the operands' alignment), then
// the two rows of lanes (2 x FO_LANES doubles of shared memory, declared by the entry point: a
// static local of a template lies outside the CUDA emulator's shared-memory section) are
// tree-summed. Launched with FO_LANES threads per block.
template <int SLOTS, bool MIXED, typename NormOp, typename Scalars>
__device__ __forceinline__ void fo_multi_tensor_norms(const FoTensor* __restrict__ tensors,
                                                      const FoChunk* __restrict__ chunks, int chunk_count,
                                                      const FoControl* __restrict__ control,
                                                      const float* __restrict__ hyper,
                                                      const FoEntryStep* __restrict__ steps,
                                                      const int* __restrict__ flags,
                                                      double* __restrict__ chunk_sums,
                                                      double (*lanes)[FO_LANES]) {
  if (control->skip) return;
  const FoGradPrep prep{control->step_inv_grad_scale, control->clip_coef};
  fo_for_each_chunk<Scalars>(tensors, chunks, chunk_count, hyper, steps, flags,
      [&](int c, int, const FoTensor& t, long long from, long long to, int f, const Scalars& s) {
        const NormOp op{s, f};
        double sum_a = 0.0, sum_b = 0.0;
        for (long long k = from + threadIdx.x; k < to; k += FO_LANES) {
          fo_norm_element<SLOTS, MIXED>(t, k, op, prep, f, sum_a, sum_b);
        }
        lanes[0][threadIdx.x] = sum_a;
        lanes[1][threadIdx.x] = sum_b;
        fo_tree_reduce<2>(lanes, FoSum{});
        if (threadIdx.x == 0) {
          chunk_sums[2 * c] = lanes[0][0];
          chunk_sums[2 * c + 1] = lanes[1][0];
        }
        __syncthreads();  // the lanes are reused by the next chunk
      });
}

// The four entry points of a layer-wise kernel: the norm pass and the update, float32 storage
// only and any storage formats. NormOp and Op are both built from Scalars::of; the update's
// scalars are completed by Scalars::layer from its tensor's sums.
#define FO_LAYERWISE_KERNELS(name, SLOTS, NormOp, Op, Scalars)                                        \
  extern "C" __global__ void name##_norms(const FoTensor* tensors, const FoChunk* chunks,             \
                                          int chunk_count, const FoControl* control,                   \
                                          const float* hyper, const FoEntryStep* steps,                \
                                          const int* flags, double* chunk_sums) {                      \
    __shared__ double lanes[2][FO_LANES];                                                              \
    fo_multi_tensor_norms<SLOTS, false, NormOp, Scalars>(tensors, chunks, chunk_count, control, hyper, \
                                                          steps, flags, chunk_sums, lanes);          \
  }                                                                                                    \
  extern "C" __global__ void name##_norms_mixed(const FoTensor* tensors, const FoChunk* chunks,       \
                                                int chunk_count, const FoControl* control,             \
                                                const float* hyper, const FoEntryStep* steps,          \
                                                const int* flags, double* chunk_sums) {                \
    __shared__ double lanes[2][FO_LANES];                                                              \
    fo_multi_tensor_norms<SLOTS, true, NormOp, Scalars>(tensors, chunks, chunk_count, control, hyper,  \
                                                         steps, flags, chunk_sums, lanes);          \
  }                                                                                                    \
  extern "C" __global__ void name(const FoTensor* tensors, const FoChunk* chunks, int chunk_count,    \
                                  const FoControl* control, const float* hyper,                        \
                                  const FoEntryStep* steps, const int* flags,                          \
                                  const double* tensor_sums) {                                         \
    fo_multi_tensor<SLOTS, false, true, Op, Scalars>(tensors, chunks, chunk_count, control, hyper,      \
                                                     steps, flags, tensor_sums);                       \
  }                                                                                                    \
  extern "C" __global__ void name##_mixed(const FoTensor* tensors, const FoChunk* chunks,             \
                                          int chunk_count, const FoControl* control,                   \
                                          const float* hyper, const FoEntryStep* steps,                \
                                          const int* flags, const double* tensor_sums) {               \
    fo_multi_tensor<SLOTS, true, true, Op, Scalars>(tensors, chunks, chunk_count, control, hyper,       \
                                                    steps, flags, tensor_sums);                        \
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

// ---- Factored updates (Adafactor): whole tensors, one block each ----
// Mirrored by io.fusedopt.internal.FactoredKernel and FactoredStep. A factored batch is one launch
// after the finalize kernel: block b takes tensors b, b + gridDim.x, ..., each whole, in passes
// separated by barriers, so that every sum has the fixed order of the host (lanes over the reduced
// index, then the tree) whatever the grid. Launched with FO_LANES threads per block.

// A tensor's matrices (io.fusedopt.cuda.DeviceSegmentTable.encodeFactoredShapes): rank >= 2: the
// number of rows x cols matrices of its last two dimensions and the first of its floats in the
// batch's per-matrix scratch; a vector: all 0.
struct FoFactoredShape {    // 24 bytes
  long long matrices;
  long long scratch_offset;
  int rows;
  int cols;
};

// Every thread: the tree sum of each thread's lane value (fo_tree_sum); called, not inlined, by
// the factored passes' many sums. inline, not static: see adafactor_load in kernels/adafactor.cu.
inline __device__ __noinline__ double fo_block_tree_sum(double lane, double* lanes) {
  lanes[threadIdx.x] = lane;
  fo_tree_sum(lanes);
  const double total = lanes[0];
  __syncthreads();  // every thread has read lane 0 before the lanes are written again
  return total;
}

// Every thread: the sum of value(i) (a double), i in [0, count), in the lanes' order (lane l adds
// l, l + FO_LANES, ... in order), then the tree (GradientStatistics' order). lanes: FO_LANES
// doubles of shared memory.
template <typename Value>
__device__ __forceinline__ double fo_block_sum(long long count, const Value& value, double* lanes) {
  double sum = 0.0;
#pragma unroll 1
  for (long long i = threadIdx.x; i < count; i += FO_LANES) sum = __dadd_rn(sum, value(i));
  return fo_block_tree_sum(sum, lanes);
}

// Every thread: the sum over k in [0, n) of square(k) in the layer-wise kernels' order
// (TensorNorms.sumOfSquares): per FO_CHUNK_ELEMENTS chunk by fo_block_sum, then the chunks' sums
// in the lanes' order (chunk c's sum is added by lane c % FO_LANES, chunks in order) and the tree.
template <typename Square>
__device__ __forceinline__ double fo_block_tensor_sum(long long n, const Square& square, double* lanes) {
  double chunk_sums = 0.0;
  const long long chunks = (n + FO_CHUNK_ELEMENTS - 1) / FO_CHUNK_ELEMENTS;
#pragma unroll 1
  for (long long c = 0; c < chunks; c++) {
    const long long from = c * FO_CHUNK_ELEMENTS;
    const long long count = n - from < FO_CHUNK_ELEMENTS ? n - from : FO_CHUNK_ELEMENTS;
    const double partial = fo_block_sum(count, [&](long long i) { return square(from + i); }, lanes);
    if (threadIdx.x == c % FO_LANES) chunk_sums = __dadd_rn(chunk_sums, partial);
  }
  return fo_block_tree_sum(chunk_sums, lanes);
}

// The body of a factored kernel: nothing when the finalize kernel decided to skip the step; else
// per tensor its entry's scalars and Step::run<MIXED>(tensor, shape, scalars, flags, prep,
// rounding, scratch + its offset, lanes).
template <bool MIXED, typename Step, typename Scalars>
__device__ __noinline__ void fo_factored(const FoTensor* __restrict__ tensors,
                                            const FoFactoredShape* __restrict__ shapes, int tensor_count,
                                            const FoControl* __restrict__ control,
                                            const float* __restrict__ hyper,
                                            const FoEntryStep* __restrict__ steps,
                                            const int* __restrict__ flags, float* __restrict__ scratch,
                                            double* lanes) {
  if (control->skip) return;
  const FoGradPrep prep{control->step_inv_grad_scale, control->clip_coef};
  const FoRounding rounding{control->rounding_seed, control->step};
  for (int i = blockIdx.x; i < tensor_count; i += gridDim.x) {
    const FoTensor t = tensors[i];
    const FoFactoredShape shape = shapes[i];
    const int f = flags[t.group];
    const FoEntryStep entry = steps[t.group];
    const Scalars s = Scalars::of(hyper + FO_HYPER_STRIDE * t.group, entry.lr, f, entry.step);
    Step::template run<MIXED>(t, shape, s, f, prep, rounding, scratch + shape.scratch_offset, lanes);
  }
}

// The two entry points of a factored kernel (the launches pick one by the batch's storage formats),
// both reading any storage formats: a factored step's cost is its passes and barriers, and one
// instantiation keeps the fatbin half as large. scratch: one float per matrix of the batch's tensors.
// SLOTS: the kernel's state slots (KernelContractTest holds it equal to the Java kernel's).
#define FO_FACTORED_KERNELS(name, SLOTS, Step, Scalars)                                               \
  extern "C" __global__ void name(const FoTensor* tensors, const FoFactoredShape* shapes,              \
                                  int tensor_count, const FoControl* control, const float* hyper,      \
                                  const FoEntryStep* steps, const int* flags, float* scratch) {        \
    __shared__ double lanes[FO_LANES];                                                                 \
    fo_factored<true, Step, Scalars>(tensors, shapes, tensor_count, control, hyper, steps, flags,      \
                                     scratch, lanes);                                                  \
  }                                                                                                    \
  extern "C" __global__ void name##_mixed(const FoTensor* tensors, const FoFactoredShape* shapes,      \
                                          int tensor_count, const FoControl* control,                  \
                                          const float* hyper, const FoEntryStep* steps,                \
                                          const int* flags, float* scratch) {                          \
    __shared__ double lanes[FO_LANES];                                                                 \
    fo_factored<true, Step, Scalars>(tensors, shapes, tensor_count, control, hyper, steps, flags,      \
                                     scratch, lanes);                                                  \
  }
