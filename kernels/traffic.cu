// The benchmarks' roofline on a GPU: a same-traffic kernel that reads and writes exactly the
// arrays an update step does (io.fusedopt.cuda.DeviceSameTraffic; the traffic per element is
// io.fusedopt.internal.UpdatePlan.bytesPerElement), with one add per written element instead of
// the algorithm. Its time is what that traffic costs on the device, measured in the same run as
// the update, so "fraction of same-traffic" says how close an update is to its own memory limit.
// Never used by an optimizer step.
#include "fusedopt_common.cuh"

// Elements a thread handles at once: 16-byte accesses of every operand, as the mixed update kernels.
#define FO_TRAFFIC_WIDTH 8

// W elements from element k: one at a time (W = 1) or as 16-byte accesses.
template <int W>
__device__ __forceinline__ void fo_traffic_load(const void* base, int dtype, long long k, float (&out)[W]) {
  if constexpr (W == 1) out[0] = fo_load_at<true>(base, dtype, k);
  else fo_load_vec<W>(base, dtype, k, out);
}
template <int W>
__device__ __forceinline__ void fo_traffic_store(void* base, int dtype, long long k, const float (&in)[W]) {
  if constexpr (W == 1) fo_store_at<true>(base, dtype, k, in[0]);
  else fo_store_vec<W>(base, dtype, k, in);
}

// primary: the fp32 param, or the fp32 master weights when param16 is set; read and written.
// grad: read only, FO_F32 or FO_BF16. param16: the bf16 model copy, written only (or null).
// state0..2: fp32 states, read and written (null where the update has fewer).
// Arithmetic: every state and the primary get the gradient added; param16 gets the new primary.
// Every operand is loaded before anything is stored, as an update does: a store to one state
// before the next state's load let the compiler (which cannot tell the states apart) issue one
// state's loads at a time, and on an H200 most updates ran faster than this kernel (2026-12-04).
template <int W>
__device__ __forceinline__ void fo_same_traffic_at(float* __restrict__ primary, const void* __restrict__ grad,
                                                   int grad_dtype, unsigned short* __restrict__ param16,
                                                   float* const (&states)[3], long long k) {
  float g[W], x[3][W], p[W];
  fo_traffic_load<W>(grad, grad_dtype, k, g);
#pragma unroll
  for (int j = 0; j < 3; j++) {
    if (states[j]) fo_traffic_load<W>(states[j], FO_F32, k, x[j]);
  }
  fo_traffic_load<W>(primary, FO_F32, k, p);
#pragma unroll
  for (int j = 0; j < 3; j++) {
    if (!states[j]) continue;
#pragma unroll
    for (int i = 0; i < W; i++) x[j][i] = __fadd_rn(x[j][i], g[i]);
    fo_traffic_store<W>(states[j], FO_F32, k, x[j]);
  }
#pragma unroll
  for (int i = 0; i < W; i++) p[i] = __fadd_rn(p[i], g[i]);
  fo_traffic_store<W>(primary, FO_F32, k, p);
  if (param16) fo_traffic_store<W>(param16, FO_BF16, k, p);
}

// Every operand is 16-byte aligned (allocations are); elements are taken W at a time by a
// grid-stride loop, the last n % W one by one.
extern "C" __global__ void fusedopt_same_traffic(float* __restrict__ primary, const void* __restrict__ grad,
                                                 int grad_dtype, unsigned short* __restrict__ param16,
                                                 float* __restrict__ state0, float* __restrict__ state1,
                                                 float* __restrict__ state2, long long n) {
  float* const states[3] = {state0, state1, state2};
  const long long vectors = n / FO_TRAFFIC_WIDTH;
  FO_FOR_EACH_ELEMENT(v, vectors) {
    fo_same_traffic_at<FO_TRAFFIC_WIDTH>(primary, grad, grad_dtype, param16, states, v * FO_TRAFFIC_WIDTH);
  }
  FO_FOR_EACH_ELEMENT(i, n - vectors * FO_TRAFFIC_WIDTH) {
    fo_same_traffic_at<1>(primary, grad, grad_dtype, param16, states, vectors * FO_TRAFFIC_WIDTH + i);
  }
}
