// RAdam family (PyTorch's torch.optim.RAdam): rectification from the step on which rho_t > 5,
// L2 or decoupled weight decay, maximize. Formulas: docs/algorithms.md and the Javadoc of
// io.fusedopt.RAdam.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.RAdamAlgorithm. Whether a step is rectified depends
// on the step only, so it travels as a scalar (rectified: 1 or 0), not as a flag.
struct RAdamScalars {
  float bc1;             // 1 - beta1^t
  float lr;
  float sqrt_bc2;        // sqrt(1 - beta2^t)
  float rect;            // the rectification term; 1 (unused) when not rectified
  float rectified;       // 1 when rho_t > 5, else 0
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float eps;
  float weight_decay;    // L2 coefficient
  float decay_factor;    // decoupled: 1 - lr*weight_decay

  // h: lr, weight_decay, beta1, beta2, eps.
  __device__ static RAdamScalars of(const float* h, float lr_f, int flags, long long step) {
    RAdamScalars s;
    const double lr = lr_f;
    const double beta1 = h[FO_H_OWN], beta2 = h[FO_H_OWN + 1];
    const double beta2_pow_t = fo_power_by_squaring(beta2, step);
    const double bc1 = __dsub_rn(1.0, fo_power_by_squaring(beta1, step));
    const double bc2 = __dsub_rn(1.0, beta2_pow_t);
    const double rho_inf = __dsub_rn(__ddiv_rn(2.0, __dsub_rn(1.0, beta2)), 1.0);
    const double rho_t = __dsub_rn(rho_inf,
        __ddiv_rn(__dmul_rn(__dmul_rn(2.0, __ll2double_rn(step)), beta2_pow_t), bc2));
    const bool rectified = rho_t > 5.0;
    s.bc1 = fo_f(bc1);
    s.lr = lr_f;
    s.sqrt_bc2 = fo_f(__dsqrt_rn(bc2));
    if (rectified) {
      const double num = __dmul_rn(__dmul_rn(__dsub_rn(rho_t, 4.0), __dsub_rn(rho_t, 2.0)), rho_inf);
      const double den = __dmul_rn(__dmul_rn(__dsub_rn(rho_inf, 4.0), __dsub_rn(rho_inf, 2.0)), rho_t);
      s.rect = fo_f(__dsqrt_rn(__ddiv_rn(num, den)));
    } else {
      s.rect = 1.f;
    }
    s.rectified = rectified ? 1.f : 0.f;
    s.beta1 = h[FO_H_OWN];
    s.one_minus_beta1 = fo_f(__dsub_rn(1.0, beta1));
    s.beta2 = h[FO_H_OWN + 1];
    s.one_minus_beta2 = fo_f(__dsub_rn(1.0, beta2));
    s.eps = h[FO_H_OWN + 2];
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.decay_factor = fo_f(__dsub_rn(1.0, __dmul_rn(lr, (double)h[FO_H_WEIGHT_DECAY])));
    return s;
  }
};

// decoupled: p = p*decay_factor; L2: g = g + wd*p;
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; u = (m / bc1) * lr;
// rectified: u = (u * ((1 / (sqrt(v) + eps)) * sqrt_bc2)) * rect;  p = p - u  (PyTorch's order).
// st[0] = exp_avg, st[1] = exp_avg_sq.
struct RAdamOp {
  RAdamScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    if (flags & FO_DECOUPLED_DECAY) p = __fmul_rn(p, s.decay_factor);
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float m = __fmaf_rn(s.beta1, st[0], __fmul_rn(s.one_minus_beta1, g));
    float v = __fmaf_rn(s.beta2, st[1], __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
    st[0] = m;
    st[1] = v;
    float u = __fmul_rn(__fdiv_rn(m, s.bc1), s.lr);
    if (s.rectified != 0.f) {
      float adaptive = __fmul_rn(__fdiv_rn(1.f, __fadd_rn(__fsqrt_rn(v), s.eps)), s.sqrt_bc2);
      u = __fmul_rn(__fmul_rn(u, adaptive), s.rect);
    }
    p = __fsub_rn(p, u);
  }
};

FO_UPDATE_KERNELS(fusedopt_radam, 2, RAdamOp, RAdamScalars)
