// What every family's per-step scalars are computed from: the hyper-parameter table, the step's
// learning rate (schedules) and the step counter, and the double helpers they use. Each family's
// .cu defines its scalar struct with a static `of(h, lr, flags, step)`, mirrored by the scalars of
// its io.fusedopt.internal.algorithms class: every derived value is computed in double with
// explicitly rounded IEEE operations from hyper-parameters already rounded to float32, then rounded
// once to float32, so the host (Java) and the device get the same bits.
#pragma once
#include "fusedopt_common.cuh"

// Hyper-parameter table: FO_HYPER_STRIDE floats per entry (io.fusedopt.internal.StepScalars.H_*):
// every algorithm's learning rate and weight decay, then the algorithm's own from FO_H_OWN on, in
// the order its Algorithm.ownHyperParameters writes them.
#define FO_H_LR 0
#define FO_H_WEIGHT_DECAY 1
#define FO_H_OWN 2

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

// ---- log, exp and real powers: io.fusedopt.internal.StepScalars.log/exp/pow, operation for operation ----
#define FO_LN2_HI 6.93147180369123816490e-01
#define FO_LN2_LO 1.90821492927058770002e-10
#define FO_INV_LN2 1.44269504088896338700e+00
#define FO_SQRT_HALF 0.70710678118654752440

__device__ __forceinline__ double fo_log(double x) {
  if (!(x > 0) || x == __longlong_as_double(0x7FF0000000000000LL)) return __longlong_as_double(0x7FF8000000000000LL);
  long long bits = __double_as_longlong(x);
  int k = 0;
  if (bits < 0x0010000000000000LL) {  // subnormal: scale into the normal range first (exact)
    x = __dmul_rn(x, 18014398509481984.0);
    bits = __double_as_longlong(x);
    k = -54;
  }
  k += (int)((unsigned long long)bits >> 52) - 1023;
  double m = __longlong_as_double((bits & 0x000FFFFFFFFFFFFFLL) | 0x3FF0000000000000LL);
  if (m >= __dmul_rn(2.0, FO_SQRT_HALF)) {
    m = __dmul_rn(m, 0.5);
    k += 1;
  }
  const double s = __ddiv_rn(__dsub_rn(m, 1.0), __dadd_rn(m, 1.0));
  const double z = __dmul_rn(s, s);
  double series = __ddiv_rn(1.0, 25.0);
  for (int n = 23; n >= 1; n -= 2) series = __dadd_rn(__dmul_rn(series, z), __ddiv_rn(1.0, (double)n));
  const double log_m = __dmul_rn(__dmul_rn(2.0, s), series);
  const double kd = (double)k;
  return __dadd_rn(__dmul_rn(kd, FO_LN2_HI), __dadd_rn(log_m, __dmul_rn(kd, FO_LN2_LO)));
}

__device__ __forceinline__ double fo_scale_by_power_of_two(double v, int k) {
  const int half = k / 2;
  return __dmul_rn(__dmul_rn(v, __longlong_as_double((long long)(half + 1023) << 52)),
                   __longlong_as_double((long long)(k - half + 1023) << 52));
}

__device__ __forceinline__ double fo_exp(double x) {
  if (x != x) return x;
  if (x > 709.78) return __longlong_as_double(0x7FF0000000000000LL);
  if (x < -745.2) return 0.0;
  const double k = floor(__dadd_rn(__dmul_rn(x, FO_INV_LN2), 0.5));
  const double r = __dsub_rn(__dsub_rn(x, __dmul_rn(k, FO_LN2_HI)), __dmul_rn(k, FO_LN2_LO));
  double factorial = 355687428096000.0;  // 17!
  double series = __ddiv_rn(1.0, factorial);
  for (int n = 17; n >= 1; n--) {
    factorial = __ddiv_rn(factorial, (double)n);
    series = __dadd_rn(__dmul_rn(series, r), __ddiv_rn(1.0, factorial));
  }
  return fo_scale_by_power_of_two(series, (int)k);
}

// x^y = exp(y log x) for x > 0; 1 for y = 0.
__device__ __forceinline__ double fo_pow(double x, double y) {
  if (y == 0.0) return 1.0;
  return fo_exp(__dmul_rn(y, fo_log(x)));
}

// ---- Learning-rate schedules (io.fusedopt.internal.LrSegments, operation for operation) ----
// A group's schedule is a table of segments; the factor of scheduler step n (the number of applied
// steps before the step being taken) comes from the last segment whose start is <= n, at its local
// step m = n - start. The group's lr for the step is float32(lr * factor), with lr the float32
// hyper-parameter.
#define FO_SCHEDULE_CONSTANT 0    // a
#define FO_SCHEDULE_LINEAR 1      // a + (b - a) * min(m, length) / length
#define FO_SCHEDULE_COSINE 2      // b + (a - b) * (1 + cospi(min(m, length) / length)) / 2
#define FO_SCHEDULE_POWER 3       // a * b^(m / period)            (step, exponential)
#define FO_SCHEDULE_POLYNOMIAL 4  // b + (a - b) * (1 - min(m, length) / length)^power
#define FO_SCHEDULE_RESTARTS 5    // the cosine over cycles of period, period*power, period*power^2, ...
// Segments reserved per group in the device table.
#define FO_MAX_SEGMENTS 32
// Ints per entry of the group-info table: the host's kernel index (UpdateKernel.code(), for reading
// a table dump; the device does not branch on it), step-independent flags, segment count, schedule
// clock, then the entry's step offset (int64, low and high word). An entry is a cohort of one group's
// tensors that share a step offset: a tensor's own step is the applied-step counter minus its
// offset (PyTorch's per-parameter step), so a tensor added late or unfrozen keeps its own count.
// The schedule clock is 1 when the schedule also counts skipped steps (ScheduleClock.ITERATIONS).
#define FO_GROUP_INFO_STRIDE 6
#define FO_INFO_SCHEDULE_CLOCK 3
#define FO_INFO_OFFSET_LO 4
#define FO_INFO_OFFSET_HI 5

struct FoSegment {     // 48 bytes
  long long start;     //  0: the first scheduler step of the segment (the first segment starts at 0)
  long long length;    //  8: LINEAR, COSINE, POLYNOMIAL: steps from a to b
  long long period;    // 16: POWER: steps per factor of b; RESTARTS: the first cycle's length
  int kind;            // 24: FO_SCHEDULE_*
  int power;           // 28: POLYNOMIAL: the exponent; RESTARTS: the cycle-length multiplier
  double a;            // 32
  double b;            // 40
};

// cos(pi * x) for x in [0, 1], from fdlibm's kernels on |y| <= pi/4 (coefficients of
// k_cos.c and k_sin.c), written out in rounded double operations so that Java gets the same bits
// (CUDA's cos and Java's Math.cos are different functions). Clamped to [-1, 1].
#define FO_PI 3.141592653589793
__device__ __forceinline__ double fo_kernel_cos(double y) {
  const double z = __dmul_rn(y, y);
  double r = __dmul_rn(z, -1.13596475577881948265e-11);
  r = __dmul_rn(z, __dadd_rn(2.08757232129817482790e-09, r));
  r = __dmul_rn(z, __dadd_rn(-2.75573143513906633035e-07, r));
  r = __dmul_rn(z, __dadd_rn(2.48015872894767294178e-05, r));
  r = __dmul_rn(z, __dadd_rn(-1.38888888888741095749e-03, r));
  r = __dmul_rn(z, __dadd_rn(4.16666666666666019037e-02, r));
  return __dsub_rn(1.0, __dsub_rn(__dmul_rn(0.5, z), __dmul_rn(z, r)));
}
__device__ __forceinline__ double fo_kernel_sin(double y) {
  const double z = __dmul_rn(y, y);
  double r = __dmul_rn(z, 1.58969099521155010221e-10);
  r = __dmul_rn(z, __dadd_rn(-2.50507602534068634195e-08, r));
  r = __dmul_rn(z, __dadd_rn(2.75573137070700676789e-06, r));
  r = __dmul_rn(z, __dadd_rn(-1.98412698298579493134e-04, r));
  r = __dadd_rn(8.33333333332248946124e-03, r);
  const double v = __dmul_rn(z, y);
  return __dadd_rn(y, __dmul_rn(v, __dadd_rn(-1.66666666666666324348e-01, __dmul_rn(z, r))));
}
__device__ __forceinline__ double fo_cospi(double x) {
  const bool negate = x > 0.5;
  if (negate) x = __dsub_rn(1.0, x);  // exact (Sterbenz): cos(pi - y) = -cos(y)
  double c = x <= 0.25 ? fo_kernel_cos(__dmul_rn(FO_PI, x))
                       : fo_kernel_sin(__dmul_rn(FO_PI, __dsub_rn(0.5, x)));  // 0.5 - x exact
  if (c > 1.0) c = 1.0;
  if (negate) c = -c;
  return c;
}

// min(m, length) / length.
__device__ __forceinline__ double fo_schedule_fraction(long long m, long long length) {
  return __ddiv_rn(__ll2double_rn(m < length ? m : length), __ll2double_rn(length));
}

// (1 + cospi(x)) / 2: the cosine's weight of a, from 1 at x = 0 down to 0 at x = 1.
__device__ __forceinline__ double fo_cosine_weight(double x) {
  return __dmul_rn(__dadd_rn(1.0, fo_cospi(x)), 0.5);
}

__device__ __forceinline__ double fo_segment_factor(const FoSegment& s, long long m) {
  switch (s.kind) {
    case FO_SCHEDULE_LINEAR:
      return __dadd_rn(s.a, __dmul_rn(__dsub_rn(s.b, s.a), fo_schedule_fraction(m, s.length)));
    case FO_SCHEDULE_COSINE:
      return __dadd_rn(s.b, __dmul_rn(__dsub_rn(s.a, s.b), fo_cosine_weight(fo_schedule_fraction(m, s.length))));
    case FO_SCHEDULE_POWER:
      return __dmul_rn(s.a, fo_power_by_squaring(s.b, m / s.period));
    case FO_SCHEDULE_POLYNOMIAL: {
      const double w = fo_power_by_squaring(__dsub_rn(1.0, fo_schedule_fraction(m, s.length)), s.power);
      return __dadd_rn(s.b, __dmul_rn(__dsub_rn(s.a, s.b), w));
    }
    case FO_SCHEDULE_RESTARTS: {
      long long cycle = s.period;
      long long into = m;
      if (s.power == 1) {
        into = m % cycle;
      } else {
        while (into >= cycle) {
          into -= cycle;
          cycle = cycle > 0x7FFFFFFFFFFFFFFFLL / s.power ? 0x7FFFFFFFFFFFFFFFLL : cycle * s.power;
        }
      }
      const double x = __ddiv_rn(__ll2double_rn(into), __ll2double_rn(cycle));
      return __dadd_rn(s.b, __dmul_rn(__dsub_rn(s.a, s.b), fo_cosine_weight(x)));
    }
    default:  // FO_SCHEDULE_CONSTANT
      return s.a;
  }
}

// The lr of scheduler step n: the hyper-parameter itself without a schedule (count 0).
__device__ __forceinline__ float fo_scheduled_lr(float lr, const FoSegment* segments, int count, long long n) {
  if (count == 0) return lr;
  int i = 0;
  while (i + 1 < count && segments[i + 1].start <= n) i++;
  return fo_f(__dmul_rn((double)lr, fo_segment_factor(segments[i], n - segments[i].start)));
}
