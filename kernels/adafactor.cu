// Adafactor family (Shazeer and Stern 2018) as torch.optim.Adafactor's _single_tensor_adafactor
// computes it: a factored second moment (a row and a column factor per matrix of the last two
// dimensions) for tensors of rank >= 2, a per-element one for vectors; the relative step size
// min(lr, 1/sqrt t) scaled by max(eps2, RMS(p)); the update clipped by max(1, RMS(U)/d). A factored
// kernel (FO_FACTORED_KERNELS): one block per tensor, whole. Formulas: docs/algorithms.md and the
// Javadoc of io.fusedopt.Adafactor; the float32 form is io.fusedopt.internal.algorithms.AdafactorAlgorithm.
#include "fusedopt_scalars.cuh"

// Mirrored by io.fusedopt.internal.algorithms.AdafactorAlgorithm.
struct AdafactorScalars {
  float weight;           // t^beta2_decay: the lerp's weight (1 at t = 1)
  float one_minus_weight; // 1 - weight (exact where the lerp uses it)
  float rho;              // min(lr, 1/sqrt t)
  float decay;            // 1 - lr * weight_decay
  float eps1;
  float eps1_squared;
  float eps2;
  float d;

  // h: lr, weight_decay, beta2_decay, eps1, eps2, d.
  __device__ static AdafactorScalars of(const float* h, float lr_f, int flags, long long step) {
    AdafactorScalars s;
    const double t = (double)step;
    s.weight = fo_f(fo_pow(t, h[FO_H_OWN]));
    s.one_minus_weight = fo_f(__dsub_rn(1.0, (double)s.weight));
    s.rho = fo_f(fmin((double)lr_f, __ddiv_rn(1.0, __dsqrt_rn(t))));
    s.decay = fo_f(__dsub_rn(1.0, __dmul_rn((double)lr_f, (double)h[FO_H_WEIGHT_DECAY])));
    s.eps1 = h[FO_H_OWN + 1];
    s.eps1_squared = fo_f(__dmul_rn((double)s.eps1, (double)s.eps1));
    s.eps2 = h[FO_H_OWN + 2];
    s.d = h[FO_H_OWN + 3];
    return s;
  }
};

// ---- float arithmetic begin (KernelContractTest: explicitly rounded operations only) ----

// torch's lerp(a, b, w): a + w(b - a) for |w| < 0.5, else b - (b - a)(1 - w), each one FMA.
__device__ __forceinline__ float adafactor_lerp(float a, float b, float w, float one_minus_w) {
  const float diff = __fsub_rn(b, a);
  return fabsf(w) < 0.5f ? __fmaf_rn(w, diff, a) : __fmaf_rn(-diff, one_minus_w, b);
}

// A value's square in double (exact for a float).
__device__ __forceinline__ double adafactor_square(float x) {
  const double y = x;
  return __dmul_rn(y, y);
}

// A mean from its sum in double, rounded once.
__device__ __forceinline__ float adafactor_mean(double sum, long long count) {
  return fo_f(__ddiv_rn(sum, (double)count));
}

// The row factors' mean floored at eps1 (NaN propagates, as torch's clamp).
__device__ __forceinline__ float adafactor_row_mean(double sum, long long rows, float eps1) {
  return fo_max_nan(eps1, adafactor_mean(sum, rows));
}

// A vector's new variance from its old one and G.
__device__ __forceinline__ float adafactor_variance(float v, float g, const AdafactorScalars& s) {
  return adafactor_lerp(v, __fmul_rn(g, g), s.weight, s.one_minus_weight);
}

// A factored element's V = r * c / mean.
__device__ __forceinline__ float adafactor_factored_variance(float r, float c, float row_mean) {
  return __fdiv_rn(__fmul_rn(r, c), row_mean);
}

// The update u = G / sqrt(max(V, eps1^2)).
__device__ __forceinline__ float adafactor_update(float g, float v, const AdafactorScalars& s) {
  return __fdiv_rn(g, __fsqrt_rn(fo_max_nan(s.eps1_squared, v)));
}

// -alpha / max(1, RMS(u)/d), alpha = max(eps2, RMS(p)) * rho, in double, rounded once.
__device__ __forceinline__ float adafactor_step_size(double param_squares, double update_squares, long long n,
                                                     const AdafactorScalars& s) {
  const double count = (double)n;
  const double rms_p = __dsqrt_rn(__ddiv_rn(param_squares, count));
  const double eps2 = s.eps2;
  const double alpha = __dmul_rn((rms_p > eps2 || rms_p != rms_p) ? rms_p : eps2, (double)s.rho);
  const double clip = __ddiv_rn(__dsqrt_rn(__ddiv_rn(update_squares, count)), (double)s.d);
  const double denominator = (clip > 1.0 || clip != clip) ? clip : 1.0;
  return fo_f(__ddiv_rn(-alpha, denominator));
}

// p = fma(step_size, u, p * decay).
__device__ __forceinline__ float adafactor_param(float p, float u, float step_size, const AdafactorScalars& s) {
  return __fmaf_rn(step_size, u, __fmul_rn(p, s.decay));
}

// ---- float arithmetic end ----

// Loads, called rather than inlined in each of the passes (the fatbin's size): an operand's element
// widened, and G (the prepared gradient, negated for maximize). inline, not static: nvcc names a
// static device function after a hash of the source's path, which would make the fatbin depend on
// where the checkout lies (build.sh --check compares it byte for byte).
inline __device__ __noinline__ float adafactor_load(const void* base, int dtype, long long k) {
  return fo_load_at<true>(base, dtype, k);
}
inline __device__ __noinline__ float adafactor_grad(const FoTensor& t, long long k, const FoGradPrep& prep, int flags) {
  const float g = fo_load_grad<true>(t, k, prep, flags);
  return (flags & FO_MAXIMIZE) ? -g : g;
}

// The update u of element k with gradient g (AdafactorAlgorithm.Kernel): a vector's from its new
// variance (written to *variance, not stored), a matrix element's from its row's and column's
// factors and its matrix's row mean. Called, not inlined, by the two passes that compute it.
inline __device__ __noinline__ float adafactor_element(const FoTensor& t, const FoFactoredShape& shape, const AdafactorScalars& s,
                                                const float* row_means, long long k, float g, float* variance) {
  if (t.state[0]) {
    *variance = adafactor_variance(adafactor_load(t.state[0], t.state_dtype, k), g, s);
    return adafactor_update(g, *variance, s);
  }
  const long long size = (long long)shape.rows * shape.cols;
  const long long m = k / size, in_matrix = k - m * size, i = in_matrix / shape.cols, j = in_matrix - i * shape.cols;
  const float r = adafactor_load(t.state[1], t.state_dtype, m * shape.rows + i);
  const float c = adafactor_load(t.state[2], t.state_dtype, m * shape.cols + j);
  return adafactor_update(g, adafactor_factored_variance(r, c, row_means[m]), s);
}

// One tensor by one block (AdafactorAlgorithm.Kernel.step, pass for pass): RMS(p)'s sum; for a
// matrix tensor, per matrix each row's and column's sum of G^2 into its factor (thread 0 stores
// it), then the row factors' mean (into row_means[m]); RMS(u)'s sum (u computed, a vector's
// variance not stored); then the update, u computed again, bit for bit, a vector's variance stored.
struct AdafactorStep {
  template <bool MIXED>
  __device__ static void run(const FoTensor& t, const FoFactoredShape& shape, const AdafactorScalars& s, int flags,
                             const FoGradPrep& prep, const FoRounding& rounding, float* row_means, double* lanes) {
    const long long n = t.length;
    const bool factored = t.state[0] == nullptr;
    const long long rows = shape.rows, cols = shape.cols, size = rows * cols;
    auto grad = [&](long long k) { return adafactor_grad(t, k, prep, flags); };
    auto state = [&](int slot, long long k) { return adafactor_load(t.state[slot], t.state_dtype, k); };
    auto param = [&](long long k) { return t.master ? t.master[k] : adafactor_load(t.param, t.param_dtype, k); };
    const double param_squares = fo_block_tensor_sum(n, [&](long long k) { return adafactor_square(param(k)); }, lanes);
    if (factored) {
      for (long long m = 0; m < shape.matrices; m++) {
        const long long base = m * size;
        for (long long i = 0; i < rows; i++) {
          const double sum = fo_block_sum(cols, [&](long long j) { return adafactor_square(grad(base + i * cols + j)); }, lanes);
          const long long at = m * rows + i;
          if (threadIdx.x == 0) {
            fo_store_at<MIXED>(t.state[1], t.state_dtype, at, adafactor_lerp(state(1, at), adafactor_mean(sum, cols), s.weight, s.one_minus_weight));
          }
        }
        for (long long j = 0; j < cols; j++) {
          const double sum = fo_block_sum(rows, [&](long long i) { return adafactor_square(grad(base + i * cols + j)); }, lanes);
          const long long at = m * cols + j;
          if (threadIdx.x == 0) {
            fo_store_at<MIXED>(t.state[2], t.state_dtype, at, adafactor_lerp(state(2, at), adafactor_mean(sum, rows), s.weight, s.one_minus_weight));
          }
        }
        __syncthreads();  // thread 0's factors are stored before any thread reads them
        const double row_sum = fo_block_sum(rows, [&](long long i) { return (double)state(1, m * rows + i); }, lanes);
        if (threadIdx.x == 0) row_means[m] = adafactor_row_mean(row_sum, rows, s.eps1);
      }
      __syncthreads();  // the row means are stored before any thread reads them
    }
    const double update_squares = fo_block_tensor_sum(n, [&](long long k) {
      float variance;
      return adafactor_square(adafactor_element(t, shape, s, row_means, k, grad(k), &variance));
    }, lanes);
    const float step_size = adafactor_step_size(param_squares, update_squares, n, s);
#pragma unroll 1
    for (long long k = threadIdx.x; k < n; k += FO_LANES) {
      const float g = grad(k);
      float variance;
      const float u = adafactor_element(t, shape, s, row_means, k, g, &variance);
      if (!factored) fo_store_at<MIXED>(t.state[0], t.state_dtype, k, variance);
      fo_store_param<MIXED>(t, k, adafactor_param(param(k), u, step_size, s), rounding, flags);
    }
  }
};

FO_FACTORED_KERNELS(fusedopt_adafactor, 3, AdafactorStep, AdafactorScalars)
