// LARS family (You et al. 2017, "Large Batch Training of Convolutional Networks") as the PyTorch
// LARS of Lightning-Universe/lightning-bolts (pl_bolts/optimizers/lars.py, the one SimCLR and BYOL
// reproductions use): SGD with momentum whose decayed gradient is scaled per tensor by the trust
// ratio trust_coefficient * ||p|| / (||g|| + weight_decay * ||p|| + eps); groups may skip the ratio
// (biases, norms). A layer-wise kernel (FO_LAYERWISE_KERNELS). Formulas: docs/algorithms.md and the
// Javadoc of io.fusedopt.Lars.
#include "fusedopt_scalars.cuh"

// The algorithm's own flag (io.fusedopt.internal.algorithms.LarsAlgorithm).
#define FO_LARS_TRUST_RATIO (FO_ALGORITHM_0 << 0)

// Mirrored by io.fusedopt.internal.algorithms.LarsAlgorithm.
struct LarsScalars {
  float neg_lr;
  float momentum;
  float one_minus_dampening;
  float weight_decay;
  float trust_coefficient;
  float eps;
  float ratio;             // per tensor (layer): the trust ratio, 1 where skipped or a norm is 0

  // h: lr, weight_decay, momentum, dampening, trust_coefficient, eps.
  __device__ static LarsScalars of(const float* h, float lr_f, int flags, long long step) {
    LarsScalars s;
    s.neg_lr = -lr_f;
    s.momentum = h[FO_H_OWN];
    s.one_minus_dampening = fo_f(__dsub_rn(1.0, (double)h[FO_H_OWN + 1]));
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.trust_coefficient = h[FO_H_OWN + 2];
    s.eps = h[FO_H_OWN + 3];
    s.ratio = 1.f;
    return s;
  }

  // trust_coefficient * ||p|| / (||g|| + weight_decay * ||p|| + eps) where both norms are non-zero.
  __device__ void layer(double sum_p, double sum_g, int flags) {
    if (!(flags & FO_LARS_TRUST_RATIO)) return;
    const double param_norm = __dsqrt_rn(sum_p), grad_norm = __dsqrt_rn(sum_g);
    if (param_norm == 0.0 || grad_norm == 0.0) return;
    const double denominator = __dadd_rn(__dadd_rn(grad_norm, __dmul_rn((double)weight_decay, param_norm)), (double)eps);
    ratio = fo_f(__ddiv_rn(__dmul_rn((double)trust_coefficient, param_norm), denominator));
  }
};

// The norm pass's values: the parameter and the gradient (negated for maximize, before weight decay).
struct LarsNormOp {
  static constexpr bool READS_STATE = false;
  LarsScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float p, float grad, const float* st, float& a, float& b) const {
    a = p;
    b = (flags & FO_MAXIMIZE) ? -grad : grad;
  }
};

// d = (g + wd*p) * ratio; momentum: b = d on the first step, else b = mu*b + (1-dampening)*d;
// Nesterov d = d + mu*b, else d = b; p = p - lr*d.  st[0] = momentum_buffer.
struct LarsOp {
  LarsScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float d = fo_effective_grad(grad, p, s.weight_decay, flags);
    if (flags & FO_LARS_TRUST_RATIO) d = __fmul_rn(d, s.ratio);
    if (flags & FO_MOMENTUM) {
      const float b = (flags & FO_FIRST_STEP) ? d : __fmaf_rn(s.momentum, st[0], __fmul_rn(s.one_minus_dampening, d));
      st[0] = b;
      d = (flags & FO_NESTEROV) ? __fmaf_rn(s.momentum, b, d) : b;
    }
    p = __fmaf_rn(s.neg_lr, d, p);
  }
};

FO_LAYERWISE_KERNELS(fusedopt_lars, 1, LarsNormOp, LarsOp, LarsScalars)
