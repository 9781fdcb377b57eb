// RMSProp family: plain, centered, with momentum, with L2 weight decay.
// Formulas: README "Numerics" and the Javadoc of io.fusedopt.RmsProp.
#include "fusedopt_common.cuh"

// Layout mirrored by io.fusedopt.internal.StepScalars (RMSPROP_* indices).
struct RmsPropScalars {
  float neg_lr;
  float weight_decay;
  float alpha;
  float one_minus_alpha;
  float eps;
  float momentum;
};

// s = alpha*s + (1-alpha)*g^2; centered: a = alpha*a + (1-alpha)*g, avg = s - a^2, else avg = s;
// denom = sqrt(avg) + eps; momentum: b = mu*b + g/denom, p = p - lr*b; else p = p - lr*(g/denom).
// grad_avg and momentum_buffer may be null when the variant does not use them.
extern "C" __global__ void fusedopt_rmsprop(float* __restrict__ param, const float* __restrict__ grad,
                                            float* __restrict__ square_avg,
                                            float* __restrict__ grad_avg,
                                            float* __restrict__ momentum_buffer, long long n,
                                            RmsPropScalars s, int flags) {
  FO_FOR_EACH_ELEMENT(i, n) {
    float p = param[i];
    float g = fo_effective_grad(grad[i], p, s.weight_decay, flags);
    float sq = __fmaf_rn(s.alpha, square_avg[i], __fmul_rn(s.one_minus_alpha, __fmul_rn(g, g)));
    square_avg[i] = sq;
    float avg = sq;
    if (flags & FO_CENTERED) {
      float a = __fmaf_rn(s.alpha, grad_avg[i], __fmul_rn(s.one_minus_alpha, g));
      grad_avg[i] = a;
      avg = __fmaf_rn(-a, a, sq);
    }
    float step = __fdiv_rn(g, __fadd_rn(__fsqrt_rn(avg), s.eps));
    if (flags & FO_MOMENTUM) {
      step = __fmaf_rn(s.momentum, momentum_buffer[i], step);
      momentum_buffer[i] = step;
    }
    param[i] = __fmaf_rn(s.neg_lr, step, p);
  }
}
