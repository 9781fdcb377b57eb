// Muon family (Jordan et al. 2024) as torch.optim.Muon defines it: a momentum buffer, the
// Nesterov or plain momentum orthogonalized by the Newton-Schulz iteration, decoupled weight decay
// from the unadjusted learning rate, and the learning rate adjusted by the tensor's shape. A matrix
// kernel (FO_MATRIX_KERNELS, fusedopt_matrix.cuh). Formulas: docs/muon.md and the Javadoc of
// io.fusedopt.Muon; the interpolations are PyTorch's vectorized CPU lerp, one fma
// (io.fusedopt.internal.algorithms.MuonAlgorithm.lerp).
#include "fusedopt_matrix.cuh"

// The algorithm's own flag (io.fusedopt.internal.algorithms.MuonAlgorithm.MATCH_RMS_ADAMW).
#define FO_MUON_MATCH_RMS_ADAMW (FO_ALGORITHM_0 << 0)

// Mirrored by io.fusedopt.internal.algorithms.MuonAlgorithm (and MatrixKernel's first five).
struct MuonScalars {
  float ns_a;
  float ns_b;
  float ns_c;
  float ns_eps;
  float ns_steps;         // the group's step count (the launches are fixed when the step is prepared)
  float buffer_weight;    // 1 - momentum
  float momentum;
  float decay_factor;     // 1 - lr * weight_decay
  float lr;
  float neg_adjusted_lr;  // per tensor: -lr * the shape's ratio (matrix)

  // h: lr, weight_decay, momentum, eps, a, b, c, ns_steps.
  __device__ static MuonScalars of(const float* h, float lr_f, int flags, long long step) {
    MuonScalars s;
    s.ns_a = h[FO_H_OWN + 2];
    s.ns_b = h[FO_H_OWN + 3];
    s.ns_c = h[FO_H_OWN + 4];
    s.ns_eps = h[FO_H_OWN + 1];
    s.ns_steps = h[FO_H_OWN + 5];
    s.buffer_weight = fo_f(__dsub_rn(1.0, (double)h[FO_H_OWN]));
    s.momentum = h[FO_H_OWN];
    s.decay_factor = fo_f(__dsub_rn(1.0, __dmul_rn((double)lr_f, (double)h[FO_H_WEIGHT_DECAY])));
    s.lr = lr_f;
    s.neg_adjusted_lr = -lr_f;
    return s;
  }

  // torch.optim.Muon's _adjust_lr for a rows x cols param, in double, rounded once:
  // 0.2 sqrt(max(rows, cols)) with MATCH_RMS_ADAMW, else sqrt(max(1, rows / cols)).
  __device__ void matrix(long long rows, long long cols, int flags) {
    double ratio;
    if (flags & FO_MUON_MATCH_RMS_ADAMW) {
      ratio = __dmul_rn(0.2, __dsqrt_rn(__ll2double_rn(rows > cols ? rows : cols)));
    } else {
      const double aspect = __ddiv_rn(__ll2double_rn(rows), __ll2double_rn(cols));
      ratio = __dsqrt_rn(aspect > 1.0 ? aspect : 1.0);
    }
    neg_adjusted_lr = fo_f(-__dmul_rn((double)lr, ratio));
  }
};

// PyTorch's lerp: fma(coeff, end - start, base), (coeff, base) = (w, start) when |w| < 0.5, else (w - 1, end).
__device__ __forceinline__ float muon_lerp(float start, float end, float w) {
  const bool small = fabsf(w) < 0.5f;
  return __fmaf_rn(small ? w : __fsub_rn(w, 1.f), __fsub_rn(end, start), small ? start : end);
}

// The matrix input: U = nesterov ? lerp(g, B', mu) : B', B' = lerp(B, g, 1 - mu). st[0] = momentum_buffer.
struct MuonInputOp {
  MuonScalars s;
  int flags;
  __device__ __forceinline__ float operator()(float, float grad, const float* st) const {
    const float b = muon_lerp(st[0], grad, s.buffer_weight);
    return (flags & FO_NESTEROV) ? muon_lerp(grad, b, s.momentum) : b;
  }
};

// B = lerp(B, g, 1 - mu); p = fma(-lr', O, p (1 - lr wd)). st[0] = momentum_buffer, st[1] = O.
struct MuonOp {
  MuonScalars s;
  int flags;
  __device__ __forceinline__ void operator()(float& p, float grad, float* st) const {
    st[0] = muon_lerp(st[0], grad, s.buffer_weight);
    if (flags & FO_DECOUPLED_DECAY) p = __fmul_rn(p, s.decay_factor);
    p = __fmaf_rn(s.neg_adjusted_lr, st[1], p);
  }
};

FO_MATRIX_KERNELS(fusedopt_muon, 2, MuonInputOp, MuonOp, MuonScalars)
