// RMSProp family: plain, centered, with momentum, with L2 weight decay.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.RmsProp.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.RmsPropAlgorithm.
struct RmsPropScalars {
  float neg_lr;
  float weight_decay;
  float alpha;
  float one_minus_alpha;
  float eps;
  float momentum;

  // h: lr, weight_decay, alpha, eps, momentum.
  __device__ static RmsPropScalars of(const float* h, float lr_f, int flags, long long step) {
    RmsPropScalars s;
    s.neg_lr = -lr_f;
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.alpha = h[FO_H_OWN];
    s.one_minus_alpha = fo_f(__dsub_rn(1.0, (double)h[FO_H_OWN]));
    s.eps = h[FO_H_OWN + 1];
    s.momentum = h[FO_H_OWN + 2];
    return s;
  }
};

// s = alpha*s + (1-alpha)*g^2; centered: a = alpha*a + (1-alpha)*g, avg = s - a^2, else avg = s;
// u = g/(sqrt(avg) + eps); momentum: b = mu*b + u, p = p - lr*b; else p = p - lr*u.
// st[0] = square_avg, st[1] = grad_avg (centered), st[2] = momentum_buffer (momentum).
struct RmsPropOp {
  RmsPropScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float sq = __fmaf_rn(s.alpha, st[0], __fmul_rn(s.one_minus_alpha, __fmul_rn(g, g)));
    st[0] = sq;
    float avg = sq;
    if (flags & FO_CENTERED) {
      float a = __fmaf_rn(s.alpha, st[1], __fmul_rn(s.one_minus_alpha, g));
      st[1] = a;
      avg = __fmaf_rn(-a, a, sq);
    }
    float step = __fdiv_rn(g, __fadd_rn(__fsqrt_rn(avg), s.eps));
    if (flags & FO_MOMENTUM) {
      step = __fmaf_rn(s.momentum, st[2], step);
      st[2] = step;
    }
    p = __fmaf_rn(s.neg_lr, step, p);
  }
};

FO_UPDATE_KERNELS(fusedopt_rmsprop, 3, RmsPropOp, RmsPropScalars)
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_rmsprop, 3, RmsPropOp, RmsPropScalars)
