// Adagrad family: accumulator with initial value, lr decay, L2 weight decay, maximize.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.Adagrad.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.AdagradAlgorithm.
struct AdagradScalars {
  float neg_clr;        // -lr / (1 + (t-1)*lr_decay)
  float weight_decay;
  float eps;

  // h: lr, weight_decay, lr_decay, eps.
  __device__ static AdagradScalars of(const float* h, float lr_f, int flags, long long step) {
    AdagradScalars s;
    const double decayed = __dadd_rn(1.0, __dmul_rn(__ll2double_rn(step - 1), (double)h[FO_H_OWN]));
    s.neg_clr = fo_f(-__ddiv_rn((double)lr_f, decayed));
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.eps = h[FO_H_OWN + 1];
    return s;
  }
};

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
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_adagrad, 1, AdagradOp, AdagradScalars)
