// Adam family: paper form and step-size form, AMSGrad, L2 and decoupled (AdamW) weight decay,
// maximize. Formulas: README "Formulas" and the Javadoc of io.fusedopt.Adam.
#include "fusedopt_common.cuh"

// Layout mirrored by io.fusedopt.internal.StepScalars (ADAM_* indices). The bias corrections
// are folded into neg_step_size and inv_sqrt_bc2 on the host each step (in double, from the
// step counter); they are never stored into m or v.
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
};

struct AdamLaunch { AdamScalars s[FO_MAX_GROUPS]; int flags[FO_MAX_GROUPS]; };

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

extern "C" __global__ void fusedopt_adam(const FoTensor* tensors, const FoChunk* chunks, int chunk_count,
                                         AdamLaunch launch) {
  fo_multi_tensor<3, AdamOp>(tensors, chunks, chunk_count, launch);
}
