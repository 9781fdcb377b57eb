// SGD family: plain SGD and momentum in its two conventions.
// Formulas: README "Formulas" and the Javadoc of io.fusedopt.Sgd / io.fusedopt.Momentum.
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

struct SgdLaunch { SgdScalars s[FO_MAX_GROUPS]; int flags[FO_MAX_GROUPS]; };
struct MomentumLaunch { MomentumScalars s[FO_MAX_GROUPS]; int flags[FO_MAX_GROUPS]; };

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

extern "C" __global__ void fusedopt_sgd(const FoTensor* tensors, const FoChunk* chunks, int chunk_count,
                                        SgdLaunch launch) {
  fo_multi_tensor<0, SgdOp>(tensors, chunks, chunk_count, launch);
}

extern "C" __global__ void fusedopt_momentum_buffer(const FoTensor* tensors, const FoChunk* chunks,
                                                    int chunk_count, MomentumLaunch launch) {
  fo_multi_tensor<1, MomentumBufferOp>(tensors, chunks, chunk_count, launch);
}

extern "C" __global__ void fusedopt_momentum_velocity(const FoTensor* tensors, const FoChunk* chunks,
                                                      int chunk_count, MomentumLaunch launch) {
  fo_multi_tensor<1, MomentumVelocityOp>(tensors, chunks, chunk_count, launch);
}
