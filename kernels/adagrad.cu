// Adagrad family: accumulator with initial value, lr decay, L2 weight decay, maximize.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.Adagrad.
#include "fusedopt_scalars.cuh"

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

FO_UPDATE_KERNELS(fusedopt_adagrad, 1, AdagradOp, AdagradScalars)
