// Adadelta family: L2 weight decay, maximize.
// Formulas: docs/algorithms.md and the Javadoc of io.fusedopt.Adadelta.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.AdadeltaAlgorithm.
struct AdadeltaScalars {
  float neg_lr;
  float rho;
  float one_minus_rho;
  float eps;
  float weight_decay;

  // h: lr, weight_decay, rho, eps.
  __device__ static AdadeltaScalars of(const float* h, float lr_f, int flags, long long step) {
    AdadeltaScalars s;
    s.neg_lr = -lr_f;
    s.rho = h[FO_H_OWN];
    s.one_minus_rho = fo_f(__dsub_rn(1.0, (double)h[FO_H_OWN]));
    s.eps = h[FO_H_OWN + 1];
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    return s;
  }
};

// s = rho*s + (1-rho)*g^2; delta = (sqrt(a + eps) / sqrt(s + eps)) * g;
// a = rho*a + (1-rho)*delta^2; p = p - lr*delta.  st[0] = square_avg, st[1] = acc_delta.
struct AdadeltaOp {
  AdadeltaScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float sq = __fmaf_rn(s.rho, st[0], __fmul_rn(s.one_minus_rho, __fmul_rn(g, g)));
    float std_dev = __fsqrt_rn(__fadd_rn(sq, s.eps));
    float a = st[1];
    float delta = __fmul_rn(__fdiv_rn(__fsqrt_rn(__fadd_rn(a, s.eps)), std_dev), g);
    st[0] = sq;
    st[1] = __fmaf_rn(s.rho, a, __fmul_rn(s.one_minus_rho, __fmul_rn(delta, delta)));
    p = __fmaf_rn(s.neg_lr, delta, p);
  }
};

FO_UPDATE_KERNELS(fusedopt_adadelta, 2, AdadeltaOp, AdadeltaScalars)
