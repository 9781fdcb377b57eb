// Adam family: paper form and step-size form, AMSGrad, L2 and decoupled (AdamW) weight decay,
// maximize. Formulas: README "Formulas" and the Javadoc of io.fusedopt.Adam.
#include "fusedopt_scalars.cuh"

// The bias corrections are folded into neg_step_size and inv_sqrt_bc2 each step; they are never
// stored into m or v. Mirrored by io.fusedopt.internal.algorithms.AdamAlgorithm.
struct AdamScalars {
  float neg_step_size;   // paper form: -lr/bc1;  step-size form: -lr*sqrt(bc2)/bc1
  float inv_sqrt_bc2;    // paper form: 1/sqrt(bc2); step-size form: 1
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float eps;
  float weight_decay;    // L2 coefficient
  float decay_factor;    // decoupled: 1 - lr*weight_decay

  // h: lr, weight_decay, beta1, beta2, eps.
  __device__ static AdamScalars of(const float* h, float lr_f, int flags, long long step) {
    AdamScalars s;
    const double lr = lr_f;
    const double beta1 = h[FO_H_OWN], beta2 = h[FO_H_OWN + 1];
    const double bc1 = __dsub_rn(1.0, fo_power_by_squaring(beta1, step));
    const double bc2 = __dsub_rn(1.0, fo_power_by_squaring(beta2, step));
    if (flags & FO_STEP_SIZE_FORM) {
      s.neg_step_size = fo_f(-__ddiv_rn(__dmul_rn(lr, __dsqrt_rn(bc2)), bc1));
      s.inv_sqrt_bc2 = 1.f;
    } else {
      s.neg_step_size = fo_f(-__ddiv_rn(lr, bc1));
      s.inv_sqrt_bc2 = fo_f(__ddiv_rn(1.0, __dsqrt_rn(bc2)));
    }
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
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; AMSGrad: vmax = max(vmax, v), used for v;
// p = p - step_size * (m / (sqrt(v)*inv_sqrt_bc2 + eps)).
// st[0] = exp_avg, st[1] = exp_avg_sq, st[2] = max_exp_avg_sq (AMSGrad).
struct AdamOp {
  AdamScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    if (flags & FO_DECOUPLED_DECAY) p = __fmul_rn(p, s.decay_factor);
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float m = __fmaf_rn(s.beta1, st[0], __fmul_rn(s.one_minus_beta1, g));
    float v = __fmaf_rn(s.beta2, st[1], __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
    st[0] = m;
    st[1] = v;
    if (flags & FO_AMSGRAD) {
      v = fo_max_nan(st[2], v);
      st[2] = v;
    }
    float denom = __fmaf_rn(__fsqrt_rn(v), s.inv_sqrt_bc2, s.eps);
    p = __fmaf_rn(s.neg_step_size, __fdiv_rn(m, denom), p);
  }
};

FO_UPDATE_KERNELS(fusedopt_adam, 3, AdamOp, AdamScalars)
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_adam, 3, AdamOp, AdamScalars)
