// SGD family: plain SGD and momentum in its two conventions.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.Sgd / io.fusedopt.Momentum.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.SgdAlgorithm.
struct SgdScalars {
  float neg_lr;
  float weight_decay;

  // h: lr, weight_decay.
  __device__ static SgdScalars of(const float* h, float lr_f, int flags, long long step) {
    SgdScalars s;
    s.neg_lr = -lr_f;
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    return s;
  }
};

// Mirrored by io.fusedopt.internal.algorithms.MomentumAlgorithm.
struct MomentumScalars {
  float neg_lr;
  float weight_decay;
  float momentum;
  float one_minus_dampening;

  // h: lr, weight_decay, momentum, dampening.
  __device__ static MomentumScalars of(const float* h, float lr_f, int flags, long long step) {
    MomentumScalars s;
    s.neg_lr = -lr_f;
    s.weight_decay = h[FO_H_WEIGHT_DECAY];
    s.momentum = h[FO_H_OWN];
    s.one_minus_dampening = fo_f(__dsub_rn(1.0, (double)h[FO_H_OWN + 1]));
    return s;
  }
};

// p = p - lr * g
struct SgdOp {
  SgdScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    p = __fmaf_rn(s.neg_lr, g, p);
  }
};

// Buffer form (PyTorch): b = g on the first step, else b = mu*b + (1-dampening)*g;
// Nesterov d = g + mu*b, else d = b; p = p - lr*d.  st[0] = b.
struct MomentumBufferOp {
  MomentumScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float b = (flags & FO_FIRST_STEP) ? g : __fmaf_rn(s.momentum, st[0], __fmul_rn(s.one_minus_dampening, g));
    float d = (flags & FO_NESTEROV) ? __fmaf_rn(s.momentum, b, g) : b;
    st[0] = b;
    p = __fmaf_rn(s.neg_lr, d, p);
  }
};

// Velocity form (Sutskever): a = -lr*g; v = mu*v + a; p = p + v, Nesterov p = (p + a) + mu*v.
// st[0] = v.
struct MomentumVelocityOp {
  MomentumScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    float g = fo_effective_grad(grad, p, s.weight_decay, flags);
    float a = __fmul_rn(s.neg_lr, g);
    float v = __fmaf_rn(s.momentum, st[0], a);
    st[0] = v;
    p = (flags & FO_NESTEROV) ? __fmaf_rn(s.momentum, v, __fadd_rn(p, a)) : __fadd_rn(p, v);
  }
};

FO_UPDATE_KERNELS(fusedopt_sgd, 0, SgdOp, SgdScalars)
FO_UPDATE_KERNELS(fusedopt_momentum_buffer, 1, MomentumBufferOp, MomentumScalars)
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_momentum_buffer, 1, MomentumBufferOp, MomentumScalars)
FO_UPDATE_KERNELS(fusedopt_momentum_velocity, 1, MomentumVelocityOp, MomentumScalars)
FO_QUANTIZED_UPDATE_KERNEL(fusedopt_momentum_velocity, 1, MomentumVelocityOp, MomentumScalars)
