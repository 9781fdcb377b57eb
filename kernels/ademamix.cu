// AdEMAMix family (Pagliardini et al. 2024; bitsandbytes optim/ademamix.py and csrc/kernels.cu,
// case ADEMAMIX): Adam with a fast and a slow EMA in the numerator, alpha and beta3 warm-ups,
// decoupled weight decay from the parameter before the step, maximize. Formulas:
// docs/algorithms.md and the Javadoc of io.fusedopt.AdEMAMix.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.AdEMAMixAlgorithm.
struct AdEMAMixScalars {
  float neg_lr;
  float inv_bc1;             // 1/(1 - beta1^t)
  float inv_sqrt_bc2;        // 1/sqrt(1 - beta2^t)
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float beta3_t;             // beta3, or its warm-up's value at step t
  float one_minus_beta3_t;   // 1 - beta3_t, from the double beta3_t
  float alpha_t;             // alpha, or its warm-up's value at step t
  float eps;
  float weight_decay;        // decoupled

  // h: lr, weight_decay, beta1, beta2, beta3, alpha, eps, alpha_warmup, beta3_warmup (0: off).
  __device__ static AdEMAMixScalars of(const float* h, float lr_f, int flags, long long step) {
    AdEMAMixScalars s;
    const double beta1 = h[FO_H_OWN], beta2 = h[FO_H_OWN + 1], beta3 = h[FO_H_OWN + 2];
    const double alpha = h[FO_H_OWN + 3];
    const double alpha_warmup = h[FO_H_OWN + 5], beta3_warmup = h[FO_H_OWN + 6];
    const double t = __ll2double_rn(step);
    const double bc1 = __dsub_rn(1.0, fo_power_by_squaring(beta1, step));
    const double bc2 = __dsub_rn(1.0, fo_power_by_squaring(beta2, step));
    double alpha_t = alpha;
    if (alpha_warmup != 0.0) {
      const double ramp = __ddiv_rn(__dmul_rn(t, alpha), alpha_warmup);
      if (ramp < alpha) alpha_t = ramp;
    }
    double beta3_t = beta3;
    if (beta3_warmup != 0.0) {
      // The config guarantees 0 < beta1 <= beta3 < 1: the denominator is <= log(beta3) < 0.
      const double ln_beta1 = fo_log(beta1), ln_beta3 = fo_log(beta3);
      const double scale = __ddiv_rn(t, beta3_warmup);
      const double denominator = __dadd_rn(__dmul_rn(__dsub_rn(1.0, scale), ln_beta3), __dmul_rn(scale, ln_beta1));
      const double scheduled = fo_exp(__ddiv_rn(__dmul_rn(ln_beta1, ln_beta3), denominator));
      if (scheduled < beta3) beta3_t = scheduled;
    }
    s.neg_lr = -lr_f;
    s.inv_bc1 = fo_f(__ddiv_rn(1.0, bc1));
    s.inv_sqrt_bc2 = fo_f(__ddiv_rn(1.0, __dsqrt_rn(bc2)));
    s.beta1 = h[FO_H_OWN];
    s.one_minus_beta1 = fo_f(__dsub_rn(1.0, beta1));
    s.beta2 = h[FO_H_OWN + 1];
    s.one_minus_beta2 = fo_f(__dsub_rn(1.0, beta2));
    s.beta3_t = fo_f(beta3_t);
    s.one_minus_beta3_t = fo_f(__dsub_rn(1.0, beta3_t));
    s.alpha_t = fo_f(alpha_t);
    s.eps = h[FO_H_OWN + 4];
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    return s;
  }
};

// m1 = b1*m1 + (1-b1)*g; m2 = b3_t*m2 + (1-b3_t)*g; nu = b2*nu + (1-b2)*g^2;
// u = (m1/bc1 + alpha_t*m2) / (sqrt(nu)/sqrt(bc2) + eps); decoupled: u = u + wd*p (p before the
// step); p = p - lr*u.  st[0] = m1, st[1] = m2, st[2] = nu.
struct AdEMAMixOp {
  AdEMAMixScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    const float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    const float m1 = __fmaf_rn(s.beta1, st[0], __fmul_rn(s.one_minus_beta1, g));
    const float m2 = __fmaf_rn(s.beta3_t, st[1], __fmul_rn(s.one_minus_beta3_t, g));
    const float nu = __fmaf_rn(s.beta2, st[2], __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
    st[0] = m1;
    st[1] = m2;
    st[2] = nu;
    const float denom = __fmaf_rn(__fsqrt_rn(nu), s.inv_sqrt_bc2, s.eps);
    float u = __fdiv_rn(__fmaf_rn(s.alpha_t, m2, __fmul_rn(m1, s.inv_bc1)), denom);
    if (flags & FO_DECOUPLED_DECAY) u = __fmaf_rn(s.weight_decay, p, u);
    p = __fmaf_rn(s.neg_lr, u, p);
  }
};

FO_UPDATE_KERNELS(fusedopt_ademamix, 3, AdEMAMixOp, AdEMAMixScalars)
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_ademamix, 3, AdEMAMixOp, AdEMAMixScalars)
