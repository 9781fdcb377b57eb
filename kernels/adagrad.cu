// Adagrad family: accumulator with initial value, lr decay, L2 weight decay, maximize.
// Formulas: README "Numerics" and the Javadoc of io.fusedopt.Adagrad.
#include "fusedopt_common.cuh"

// Layout mirrored by io.fusedopt.internal.StepScalars (ADAGRAD_* indices).
struct AdagradScalars {
  float neg_clr;        // -lr / (1 + (t-1)*lr_decay), computed on the host each step
  float weight_decay;
  float eps;
};

// h = h + g*g; p = p - clr * (g / (sqrt(h) + eps)).
extern "C" __global__ void fusedopt_adagrad(float* __restrict__ param, const float* __restrict__ grad,
                                            float* __restrict__ sum, long long n, AdagradScalars s,
                                            int flags) {
  FO_FOR_EACH_ELEMENT(i, n) {
    float p = param[i];
    float g = fo_effective_grad(grad[i], p, s.weight_decay, flags);
    float h = __fmaf_rn(g, g, sum[i]);
    sum[i] = h;
    param[i] = __fmaf_rn(s.neg_clr, __fdiv_rn(g, __fadd_rn(__fsqrt_rn(h), s.eps)), p);
  }
}
