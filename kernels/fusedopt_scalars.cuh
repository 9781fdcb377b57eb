// The per-step scalars of every update kernel, and how they are computed from a group's
// hyper-parameters and the step counter. Mirrored by io.fusedopt.internal.StepScalars (layouts and
// arithmetic): every derived value is computed in double with explicitly rounded IEEE operations
// from hyper-parameters already rounded to float32, then rounded once to float32, so the host
// (Java) and the device get the same bits.
#pragma once
#include "fusedopt_common.cuh"

// Hyper-parameter table: FO_HYPER_STRIDE floats per group (io.fusedopt.internal.StepScalars.H_*).
#define FO_H_LR 0
#define FO_H_WEIGHT_DECAY 1
#define FO_H_A 2   // momentum | alpha | beta1 | lr_decay
#define FO_H_B 3   // dampening | eps | beta2 | eps
#define FO_H_C 4   // rmsprop momentum | adam eps

struct SgdScalars {
  float neg_lr;
  float weight_decay;
};

struct MomentumScalars {
  float neg_lr;
  float weight_decay;
  float momentum;
  float one_minus_dampening;
};

struct RmsPropScalars {
  float neg_lr;
  float weight_decay;
  float alpha;
  float one_minus_alpha;
  float eps;
  float momentum;
};

// The bias corrections are folded into neg_step_size and inv_sqrt_bc2 each step; they are never
// stored into m or v.
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

struct AdagradScalars {
  float neg_clr;        // -lr / (1 + (t-1)*lr_decay)
  float weight_decay;
  float eps;
};

// base^exponent by binary exponentiation (StepScalars.powerBySquaring).
__device__ __forceinline__ double fo_power_by_squaring(double base, long long exponent) {
  double result = 1.0;
  double square = base;
  for (long long e = exponent; e > 0; e >>= 1) {
    if (e & 1) result = __dmul_rn(result, square);
    square = __dmul_rn(square, square);
  }
  return result;
}

__device__ __forceinline__ float fo_f(double v) { return __double2float_rn(v); }

// Writes the scalars of step `step` (>= 1) for a group of kernel `kernel` into out.
__device__ __forceinline__ void fo_step_scalars(int kernel, const float* h, int flags, long long step, float* out) {
  const double lr = h[FO_H_LR];
  switch (kernel) {
    case FO_KERNEL_SGD: {
      SgdScalars* s = reinterpret_cast<SgdScalars*>(out);
      s->neg_lr = -h[FO_H_LR];
      s->weight_decay = h[FO_H_WEIGHT_DECAY];
      break;
    }
    case FO_KERNEL_MOMENTUM_BUFFER:
    case FO_KERNEL_MOMENTUM_VELOCITY: {
      MomentumScalars* s = reinterpret_cast<MomentumScalars*>(out);
      s->neg_lr = -h[FO_H_LR];
      s->weight_decay = h[FO_H_WEIGHT_DECAY];
      s->momentum = h[FO_H_A];
      s->one_minus_dampening = fo_f(__dsub_rn(1.0, (double)h[FO_H_B]));
      break;
    }
    case FO_KERNEL_RMSPROP: {
      RmsPropScalars* s = reinterpret_cast<RmsPropScalars*>(out);
      s->neg_lr = -h[FO_H_LR];
      s->weight_decay = h[FO_H_WEIGHT_DECAY];
      s->alpha = h[FO_H_A];
      s->one_minus_alpha = fo_f(__dsub_rn(1.0, (double)h[FO_H_A]));
      s->eps = h[FO_H_B];
      s->momentum = h[FO_H_C];
      break;
    }
    case FO_KERNEL_ADAM: {
      AdamScalars* s = reinterpret_cast<AdamScalars*>(out);
      const double beta1 = h[FO_H_A], beta2 = h[FO_H_B];
      const double bc1 = __dsub_rn(1.0, fo_power_by_squaring(beta1, step));
      const double bc2 = __dsub_rn(1.0, fo_power_by_squaring(beta2, step));
      if (flags & FO_STEP_SIZE_FORM) {
        s->neg_step_size = fo_f(-__ddiv_rn(__dmul_rn(lr, __dsqrt_rn(bc2)), bc1));
        s->inv_sqrt_bc2 = 1.f;
      } else {
        s->neg_step_size = fo_f(-__ddiv_rn(lr, bc1));
        s->inv_sqrt_bc2 = fo_f(__ddiv_rn(1.0, __dsqrt_rn(bc2)));
      }
      s->beta1 = h[FO_H_A];
      s->one_minus_beta1 = fo_f(__dsub_rn(1.0, beta1));
      s->beta2 = h[FO_H_B];
      s->one_minus_beta2 = fo_f(__dsub_rn(1.0, beta2));
      s->eps = h[FO_H_C];
      s->weight_decay = h[FO_H_WEIGHT_DECAY];
      s->decay_factor = fo_f(__dsub_rn(1.0, __dmul_rn(lr, (double)h[FO_H_WEIGHT_DECAY])));
      break;
    }
    case FO_KERNEL_ADAGRAD: {
      AdagradScalars* s = reinterpret_cast<AdagradScalars*>(out);
      const double decayed = __dadd_rn(1.0, __dmul_rn(__ll2double_rn(step - 1), (double)h[FO_H_A]));
      s->neg_clr = fo_f(-__ddiv_rn(lr, decayed));
      s->weight_decay = h[FO_H_WEIGHT_DECAY];
      s->eps = h[FO_H_B];
      break;
    }
  }
}
