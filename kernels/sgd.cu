// SGD family: plain SGD and momentum in its two conventions.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.Sgd / io.fusedopt.Momentum.
#include "fusedopt_scalars.cuh"

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
FO_UPDATE_KERNELS(fusedopt_momentum_velocity, 1, MomentumVelocityOp, MomentumScalars)
