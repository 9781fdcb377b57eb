// Adamax family: Adam's infinity-norm variant, L2 weight decay, maximize.
// Formulas: docs/algorithms.md and the Javadoc of io.fusedopt.Adamax.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.AdamaxAlgorithm.
struct AdamaxScalars {
  float neg_clr;          // -lr / (1 - beta1^t)
  float beta1;
  float one_minus_beta1;
  float beta2;
  float eps;
  float weight_decay;

  // h: lr, weight_decay, beta1, beta2, eps.
  __device__ static AdamaxScalars of(const float* h, float lr_f, int flags, long long step) {
    AdamaxScalars s;
    const double beta1 = h[FO_H_OWN];
    const double bc1 = __dsub_rn(1.0, fo_power_by_squaring(beta1, step));
    s.neg_clr = fo_f(-__ddiv_rn((double)lr_f, bc1));
    s.beta1 = h[FO_H_OWN];
    s.one_minus_beta1 = fo_f(__dsub_rn(1.0, beta1));
    s.beta2 = h[FO_H_OWN + 1];
    s.eps = h[FO_H_OWN + 2];
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    return s;
  }
};

// m = b1*m + (1-b1)*g; u = max(b2*u, |g| + eps) (NaN propagates); p = p - clr * (m / u).
// |g| clears the sign bit, NaN included, as AdamaxAlgorithm.magnitude does (fabsf would leave a
// NaN's bits to the compiler). st[0] = exp_avg, st[1] = exp_inf.
struct AdamaxOp {
  AdamaxScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float m = __fmaf_rn(s.beta1, st[0], __fmul_rn(s.one_minus_beta1, g));
    float magnitude = __int_as_float(__float_as_int(g) & 0x7fffffff);
    float u = fo_max_nan(__fmul_rn(s.beta2, st[1]), __fadd_rn(magnitude, s.eps));
    st[0] = m;
    st[1] = u;
    p = __fmaf_rn(s.neg_clr, __fdiv_rn(m, u), p);
  }
};

FO_UPDATE_KERNELS(fusedopt_adamax, 2, AdamaxOp, AdamaxScalars)
