// LAMB family (You et al. 2019) as NVIDIA Apex's FusedLAMB defines it (apex/optimizers/fused_lamb.py,
// csrc/multi_tensor_lamb.cu LAMBStage1Functor and LAMBStage2Functor): Adam's moments, the update
// m_hat / (sqrt(v_hat) + eps) with decoupled or L2 weight decay, scaled per tensor by the trust
// ratio ||p|| / ||update||. A layer-wise kernel (FO_LAYERWISE_KERNELS): the norm pass computes the
// update without writing anything, the update pass computes it again, bit for bit, and applies it.
// Formulas: docs/algorithms.md and the Javadoc of io.fusedopt.Lamb.
#include "fusedopt_scalars.cuh"

// The algorithm's own flags (io.fusedopt.internal.algorithms.LambAlgorithm).
#define FO_LAMB_BIAS_CORRECTION (FO_ALGORITHM_0 << 0)
#define FO_LAMB_TRUST_RATIO     (FO_ALGORITHM_0 << 1)  // weight decay != 0, or the NVLAMB option

// Mirrored by io.fusedopt.internal.algorithms.LambAlgorithm.
struct LambScalars {
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float inv_bc1;          // 1 / (1 - beta1^t), 1 without bias correction
  float inv_sqrt_bc2;     // 1 / sqrt(1 - beta2^t), 1 without bias correction
  float eps;
  float weight_decay;
  float lr;
  float neg_ratio;        // per tensor (layer): -lr * ||p|| / ||u||, or -lr

  // h: lr, weight_decay, beta1, beta2, eps.
  __device__ static LambScalars of(const float* h, float lr_f, int flags, long long step) {
    LambScalars s;
    const double beta1 = h[FO_H_OWN], beta2 = h[FO_H_OWN + 1];
    s.beta1 = h[FO_H_OWN];
    s.one_minus_beta1 = fo_f(__dsub_rn(1.0, beta1));
    s.beta2 = h[FO_H_OWN + 1];
    s.one_minus_beta2 = fo_f(__dsub_rn(1.0, beta2));
    if (flags & FO_LAMB_BIAS_CORRECTION) {
      s.inv_bc1 = fo_f(__ddiv_rn(1.0, __dsub_rn(1.0, fo_power_by_squaring(beta1, step))));
      s.inv_sqrt_bc2 = fo_f(__ddiv_rn(1.0, __dsqrt_rn(__dsub_rn(1.0, fo_power_by_squaring(beta2, step)))));
    } else {
      s.inv_bc1 = 1.f;
      s.inv_sqrt_bc2 = 1.f;
    }
    s.eps = h[FO_H_OWN + 2];
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.lr = lr_f;
    s.neg_ratio = -lr_f;
    return s;
  }

  // The trust ratio from the tensor's sums of squares of p and of the update (Apex's
  // LAMBStage2Functor): lr * ||p|| / ||u|| where both norms are non-zero, else lr.
  __device__ void layer(double sum_p, double sum_u, int flags) {
    double ratio = (double)lr;
    if (flags & FO_LAMB_TRUST_RATIO) {
      const double param_norm = __dsqrt_rn(sum_p), update_norm = __dsqrt_rn(sum_u);
      if (param_norm != 0.0 && update_norm != 0.0) ratio = __dmul_rn(ratio, __ddiv_rn(param_norm, update_norm));
    }
    neg_ratio = fo_f(-ratio);
  }
};

// L2: g = g + wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// u = (m*inv_bc1) / (sqrt(v)*inv_sqrt_bc2 + eps); decoupled: u = u + wd*p.
// m and v are the new moments (written by the update pass only).
__device__ __forceinline__ float lamb_update(const LambScalars& s, int flags, float p, float grad, float& m, float& v) {
  const float g = fo_effective_grad(grad, p, s.weight_decay, flags);
  m = __fmaf_rn(s.beta1, m, __fmul_rn(s.one_minus_beta1, g));
  v = __fmaf_rn(s.beta2, v, __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
  const float denom = __fmaf_rn(__fsqrt_rn(v), s.inv_sqrt_bc2, s.eps);
  float u = __fdiv_rn(__fmul_rn(m, s.inv_bc1), denom);
  if (flags & FO_DECOUPLED_DECAY) u = __fmaf_rn(s.weight_decay, p, u);
  return u;
}

// The norm pass's values: the parameter before the step and its update.
struct LambNormOp {
  static constexpr bool READS_STATE = true;
  LambScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float p, float grad, const float* st, float& a, float& b) const {
    float m = st[0], v = st[1];
    a = p;
    b = lamb_update(s, flags, p, grad, m, v);
  }
};

// p = p - ratio*u. st[0] = exp_avg, st[1] = exp_avg_sq.
struct LambOp {
  LambScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    const float u = lamb_update(s, flags, p, grad, st[0], st[1]);
    p = __fmaf_rn(s.neg_ratio, u, p);
  }
};

FO_LAYERWISE_KERNELS(fusedopt_lamb, 2, LambNormOp, LambOp, LambScalars)
