// Adagrad family: accumulator with initial value, lr decay, L2 weight decay, maximize.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.Adagrad.
#include "fusedopt_common.cuh"

// Layout mirrored by io.fusedopt.internal.StepScalars (ADAGRAD_* indices).
struct AdagradScalars {
  float neg_clr;        // -lr / (1 + (t-1)*lr_decay), computed on the host each step
  float weight_decay;
  float eps;
};

struct AdagradLaunch { AdagradScalars s[FO_MAX_GROUPS]; int flags[FO_MAX_GROUPS]; };

// h = h + g*g; p = p - clr * (g / (sqrt(h) + eps)).  st[0] = sum.
struct AdagradOp {
  AdagradScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float h = __fmaf_rn(g, g, st[0]);
    st[0] = h;
    p = __fmaf_rn(s.neg_clr, __fdiv_rn(g, __fadd_rn(__fsqrt_rn(h), s.eps)), p);
  }
};

extern "C" __global__ void fusedopt_adagrad(const FoTensor* tensors, const FoChunk* chunks, int chunk_count,
                                            AdagradLaunch launch) {
  fo_multi_tensor<1, AdagradOp>(tensors, chunks, chunk_count, launch);
}
