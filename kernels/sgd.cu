// SGD family: plain SGD and momentum in its two conventions.
// Formulas: README "Numerics" and the Javadoc of io.fusedopt.Sgd / io.fusedopt.Momentum.
#include "fusedopt_common.cuh"

// Layout mirrored by io.fusedopt.internal.StepScalars (SGD_* indices).
struct SgdScalars {
  float neg_lr;
  float weight_decay;
};

// Layout mirrored by io.fusedopt.internal.StepScalars (MOMENTUM_* indices).
struct MomentumScalars {
  float neg_lr;
  float weight_decay;
  float momentum;
  float one_minus_dampening;
};

// p = p - lr * g
extern "C" __global__ void fusedopt_sgd(float* __restrict__ param, const float* __restrict__ grad,
                                        long long n, SgdScalars s, int flags) {
  FO_FOR_EACH_ELEMENT(i, n) {
    float p = param[i];
    float g = fo_effective_grad(grad[i], p, s.weight_decay, flags);
    param[i] = __fmaf_rn(s.neg_lr, g, p);
  }
}

// Buffer form (PyTorch): b = g on the first step, else b = mu*b + (1-dampening)*g;
// Nesterov d = g + mu*b, else d = b; p = p - lr*d.
extern "C" __global__ void fusedopt_momentum_buffer(float* __restrict__ param,
                                                    const float* __restrict__ grad,
                                                    float* __restrict__ buffer, long long n,
                                                    MomentumScalars s, int flags) {
  FO_FOR_EACH_ELEMENT(i, n) {
    float p = param[i];
    float g = fo_effective_grad(grad[i], p, s.weight_decay, flags);
    float b = (flags & FO_FIRST_STEP)
                  ? g
                  : __fmaf_rn(s.momentum, buffer[i], __fmul_rn(s.one_minus_dampening, g));
    float d = (flags & FO_NESTEROV) ? __fmaf_rn(s.momentum, b, g) : b;
    buffer[i] = b;
    param[i] = __fmaf_rn(s.neg_lr, d, p);
  }
}

// Velocity form (Sutskever): a = -lr*g; v = mu*v + a; p = p + v,
// Nesterov p = (p + a) + mu*v.
extern "C" __global__ void fusedopt_momentum_velocity(float* __restrict__ param,
                                                      const float* __restrict__ grad,
                                                      float* __restrict__ velocity, long long n,
                                                      MomentumScalars s, int flags) {
  FO_FOR_EACH_ELEMENT(i, n) {
    float p = param[i];
    float g = fo_effective_grad(grad[i], p, s.weight_decay, flags);
    float a = __fmul_rn(s.neg_lr, g);
    float v = __fmaf_rn(s.momentum, velocity[i], a);
    velocity[i] = v;
    param[i] = (flags & FO_NESTEROV) ? __fmaf_rn(s.momentum, v, __fadd_rn(p, a)) : __fadd_rn(p, v);
  }
}
