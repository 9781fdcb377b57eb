// Rprop family (torch.optim.Rprop): per-element step sizes grown or shrunk by the sign of g * prev,
// maximize; no weight decay. Formulas: docs/algorithms.md and the Javadoc of io.fusedopt.Rprop.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.RpropAlgorithm.
struct RpropScalars {
  float lr;             // the step size at a tensor's own first step
  float eta_minus;
  float eta_plus;
  float step_size_min;
  float step_size_max;

  // h: lr, weight_decay (unused), eta_minus, eta_plus, step_size_min, step_size_max.
  __device__ static RpropScalars of(const float* h, float lr_f, int flags, long long step) {
    RpropScalars s;
    s.lr = lr_f;
    s.eta_minus = h[FO_H_OWN];
    s.eta_plus = h[FO_H_OWN + 1];
    s.step_size_min = h[FO_H_OWN + 2];
    s.step_size_max = h[FO_H_OWN + 3];
    return s;
  }
};

// torch.sign: 1, -1, +0 for both zeros; NaN stays NaN (Java: RpropAlgorithm.sign).
__device__ __forceinline__ float fo_rprop_sign(float x) {
  return x > 0.f ? 1.f : (x < 0.f ? -1.f : (x == 0.f ? 0.f : x));
}

// x clamped to [lo, hi]; NaN stays NaN, unlike fminf/fmaxf (Java: RpropAlgorithm.clamp).
__device__ __forceinline__ float fo_rprop_clamp(float x, float lo, float hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

// First step: prev = 0, step_size = lr. d = g*prev; step_size = clamp(step_size * (d > 0 ? eta_plus :
// d < 0 ? eta_minus : d == 0 ? 1 : d), min, max); g = d < 0 ? 0 : g; p = p + (-sign(g))*step_size
// (PyTorch's addcmul with value -1); prev = g.  st[0] = prev, st[1] = step_size.
struct RpropOp {
  RpropScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, 0.f, flags);
    const bool first = (flags & FO_FIRST_STEP) != 0;
    const float prev = first ? 0.f : st[0];
    float step_size = first ? s.lr : st[1];
    const float d = __fmul_rn(g, prev);
    const float factor = d > 0.f ? s.eta_plus : (d < 0.f ? s.eta_minus : (d == 0.f ? 1.f : d));
    step_size = fo_rprop_clamp(__fmul_rn(step_size, factor), s.step_size_min, s.step_size_max);
    if (d < 0.f) g = 0.f;
    p = __fadd_rn(p, __fmul_rn(-fo_rprop_sign(g), step_size));
    st[0] = g;
    st[1] = step_size;
  }
};

FO_UPDATE_KERNELS(fusedopt_rprop, 2, RpropOp, RpropScalars)
