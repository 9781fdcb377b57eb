// ASGD family: averaged SGD with decay term, eta and mu per step, L2 weight decay, maximize.
// Formulas: docs/algorithms.md and the Javadoc of io.fusedopt.Asgd (PyTorch's _single_tensor_asgd).
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.AsgdAlgorithm.
struct AsgdScalars {
  float neg_eta;       // -lr / (1 + lambd*lr*(t-1))^alpha
  float decay;         // 1 - lambd*eta, from the float32 eta
  float weight_decay;
  float mu;            // 1 / max(1, (t-1) - t0)

  // h: lr, weight_decay, lambd, alpha, t0.
  __device__ static AsgdScalars of(const float* h, float lr_f, int flags, long long step) {
    AsgdScalars s;
    const double lambd = (double)h[FO_H_OWN];
    const double steps_before = __ll2double_rn(step - 1);
    const double base = __dadd_rn(1.0, __dmul_rn(__dmul_rn(lambd, (double)lr_f), steps_before));
    const float eta = fo_f(__ddiv_rn((double)lr_f, fo_pow(base, (double)h[FO_H_OWN + 1])));
    const double since_t0 = __dsub_rn(steps_before, (double)h[FO_H_OWN + 2]);
    s.neg_eta = -eta;
    s.decay = fo_f(__dsub_rn(1.0, __dmul_rn(lambd, (double)eta)));
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.mu = fo_f(__ddiv_rn(1.0, since_t0 > 1.0 ? since_t0 : 1.0));
    return s;
  }
};

// p = p*decay; p = p - eta*g; ax = mu != 1 ? ax + (p - ax)*mu : p.  st[0] = ax.
// p - ax is written p + (-ax): the same IEEE operation (negation is exact), with the intrinsics the
// emulator provides.
struct AsgdOp {
  AsgdScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    const float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    p = __fmaf_rn(s.neg_eta, g, __fmul_rn(p, s.decay));
    st[0] = s.mu != 1.0f ? __fadd_rn(st[0], __fmul_rn(__fadd_rn(p, -st[0]), s.mu)) : p;
  }
};

FO_UPDATE_KERNELS(fusedopt_asgd, 1, AsgdOp, AsgdScalars)
