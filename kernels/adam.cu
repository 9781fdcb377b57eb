// Adam family: paper form and step-size form, AMSGrad, L2 and decoupled (AdamW) weight decay,
// maximize. Formulas: README "Formulas" and the Javadoc of io.fusedopt.Adam.
#include "fusedopt_scalars.cuh"

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
