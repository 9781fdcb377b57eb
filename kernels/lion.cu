// Lion family (Chen et al. 2023; google/automl lion/lion_pytorch.py): the sign of an interpolated
// momentum, decoupled weight decay, maximize. Formulas: docs/algorithms.md and the Javadoc of
// io.fusedopt.Lion.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.LionAlgorithm.
struct LionScalars {
  float neg_lr;
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float decay_factor;    // decoupled: 1 - lr*weight_decay

  // h: lr, weight_decay, beta1, beta2.
  __device__ static LionScalars of(const float* h, float lr_f, int flags, long long step) {
    LionScalars s;
    const double beta1 = h[FO_H_OWN], beta2 = h[FO_H_OWN + 1];
    s.neg_lr = -lr_f;
    s.beta1 = h[FO_H_OWN];
    s.one_minus_beta1 = fo_f(__dsub_rn(1.0, beta1));
    s.beta2 = h[FO_H_OWN + 1];
    s.one_minus_beta2 = fo_f(__dsub_rn(1.0, beta2));
    s.decay_factor = fo_f(__dsub_rn(1.0, __dmul_rn((double)lr_f, (double)h[FO_H_WEIGHT_DECAY])));
    return s;
  }
};

// 1 for x > 0, -1 for x < 0, +0 for either zero (fma(-lr, +0, p) keeps p's bits), NaN for NaN
// (LionAlgorithm.sign).
__device__ __forceinline__ float lion_sign(float x) {
  return x > 0.f ? 1.f : (x < 0.f ? -1.f : (x == 0.f ? 0.f : x));
}

// decoupled: p = p*decay_factor; c = b1*m + (1-b1)*g; p = p - lr*sign(c); m = b2*m + (1-b2)*g.
// st[0] = exp_avg.
struct LionOp {
  LionScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    if (flags & FO_DECOUPLED_DECAY) p = __fmul_rn(p, s.decay_factor);
    float g = (flags & FO_MAXIMIZE) ? -grad : grad;
    float m = st[0];
    float c = __fmaf_rn(s.beta1, m, __fmul_rn(s.one_minus_beta1, g));
    p = __fmaf_rn(s.neg_lr, lion_sign(c), p);
    st[0] = __fmaf_rn(s.beta2, m, __fmul_rn(s.one_minus_beta2, g));
  }
};

FO_UPDATE_KERNELS(fusedopt_lion, 1, LionOp, LionScalars)
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_lion, 1, LionOp, LionScalars)
