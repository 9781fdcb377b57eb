// NAdam family (torch.optim.NAdam, torch 2.x single-tensor update): momentum decay psi, L2 and
// decoupled (NAdamW) weight decay, maximize. Formulas: the Javadoc of io.fusedopt.NAdam.
#include "fusedopt_scalars.cuh"

// mu_1 * ... * mu_t with mu_i = beta1 * (1 - 0.5 * q^i), q^i by repeated multiplication, 0 once a
// partial product is below 2^-60 (1 - P is then exactly 1 in double, for this and every later
// step: the proof is at NAdamAlgorithm.muProduct, which this mirrors operation for operation).
__device__ __forceinline__ double fo_nadam_mu_product(double beta1, double q, long long step) {
  double product = 1.0;
  double q_power = 1.0;
  for (long long i = 1; i <= step; i++) {
    q_power = __dmul_rn(q_power, q);
    product = __dmul_rn(product, __dmul_rn(beta1, __dsub_rn(1.0, __dmul_rn(0.5, q_power))));
    if (product < 8.673617379884035472e-19) return 0.0;  // 2^-60 exactly
  }
  return product;
}

// Recomputed from the step alone every step (no mu_product state). Mirrored by
// io.fusedopt.internal.algorithms.NAdamAlgorithm.
struct NAdamScalars {
  float neg_grad_coef;      // -lr*(1 - mu_t)/(1 - mu_product)
  float neg_momentum_coef;  // -lr*mu_{t+1}/(1 - mu_product*mu_{t+1})
  float bc2;                // 1 - beta2^t
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float eps;
  float weight_decay;       // L2 coefficient
  float decay_factor;       // decoupled: 1 - lr*weight_decay

  // h: lr, weight_decay, beta1, beta2, eps, momentum_decay.
  __device__ static NAdamScalars of(const float* h, float lr_f, int flags, long long step) {
    NAdamScalars s;
    const double lr = lr_f;
    const double beta1 = h[FO_H_OWN], beta2 = h[FO_H_OWN + 1];
    const double q = fo_pow(0.96, (double)h[FO_H_OWN + 3]);
    const double q_power_t = fo_power_by_squaring(q, step);
    const double mu = __dmul_rn(beta1, __dsub_rn(1.0, __dmul_rn(0.5, q_power_t)));
    const double mu_next = __dmul_rn(beta1, __dsub_rn(1.0, __dmul_rn(0.5, __dmul_rn(q_power_t, q))));
    const double mu_product = fo_nadam_mu_product(beta1, q, step);
    const double mu_product_next = __dmul_rn(mu_product, mu_next);
    s.neg_grad_coef = fo_f(-__ddiv_rn(__dmul_rn(lr, __dsub_rn(1.0, mu)), __dsub_rn(1.0, mu_product)));
    s.neg_momentum_coef = fo_f(-__ddiv_rn(__dmul_rn(lr, mu_next), __dsub_rn(1.0, mu_product_next)));
    s.bc2 = fo_f(__dsub_rn(1.0, fo_power_by_squaring(beta2, step)));
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
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; denom = sqrt(v/bc2) + eps;
// p = p - grad_coef*(g/denom); p = p - momentum_coef*(m/denom).
// st[0] = exp_avg, st[1] = exp_avg_sq.
struct NAdamOp {
  NAdamScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    if (flags & FO_DECOUPLED_DECAY) p = __fmul_rn(p, s.decay_factor);
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float m = __fmaf_rn(s.beta1, st[0], __fmul_rn(s.one_minus_beta1, g));
    float v = __fmaf_rn(s.beta2, st[1], __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
    st[0] = m;
    st[1] = v;
    float denom = __fadd_rn(__fsqrt_rn(__fdiv_rn(v, s.bc2)), s.eps);
    p = __fmaf_rn(s.neg_grad_coef, __fdiv_rn(g, denom), p);
    p = __fmaf_rn(s.neg_momentum_coef, __fdiv_rn(m, denom), p);
  }
};

FO_UPDATE_KERNELS(fusedopt_nadam, 3, NAdamOp, NAdamScalars)
