// The device side of a step that needs no host round trip (io.fusedopt.internal.StepControl is the
// Java mirror, line for line):
//   1. fusedopt_grad_stats (when the gradient is checked): per chunk of the segment table, the sum
//      of squares of the unscaled gradient, in double, in a fixed order;
//   2. fusedopt_finalize_step: the global sum in a fixed order, the non-finite verdict, the dynamic
//      loss scale, the step counter, the clipping factor, and every entry's scheduled learning
//      rate, own step and flags;
//   3. the update kernels, which read what step 2 wrote (and do nothing when it skipped the step)
//      and compute their family's per-step scalars from it; a layer-wise kernel (LAMB, LARS) first
//      runs its norm pass and fusedopt_tensor_norms (kernels/fusedopt_common.cuh).
#include "fusedopt_scalars.cuh"

// partials[positions[c]] = the sum over chunk c of (double)g^2, g the gradient unscaled by
// inv_grad_scale: lane l adds the elements start+l, start+l+FO_LANES, ... in order, then the lanes
// are tree-summed. positions puts the partial sums in registration order, whatever the batch
// (io.fusedopt.internal.GradientStatistics.registrationPositions). Launched with FO_LANES threads
// per block.
extern "C" __global__ void fusedopt_grad_stats(const FoTensor* __restrict__ tensors,
                                               const FoChunk* __restrict__ chunks, int chunk_count,
                                               const FoControl* __restrict__ control,
                                               const int* __restrict__ positions,
                                               double* __restrict__ partials) {
  __shared__ double lanes[FO_LANES];
  const float inv_grad_scale = control->inv_grad_scale;
  const bool unscale = inv_grad_scale != 1.0f;
  for (int c = blockIdx.x; c < chunk_count; c += gridDim.x) {
    const FoChunk chunk = chunks[c];
    const FoTensor t = tensors[chunk.tensor];
    long long end = chunk.start + FO_CHUNK_ELEMENTS;
    if (end > t.length) end = t.length;
    double sum = 0.0;
    for (long long k = chunk.start + threadIdx.x; k < end; k += FO_LANES) {
      float g = fo_load_at<true>(t.grad, t.grad_dtype, k);
      if (unscale) g = __fmul_rn(g, inv_grad_scale);
      const double x = g;
      sum = __dadd_rn(sum, __dmul_rn(x, x));
    }
    lanes[threadIdx.x] = sum;
    fo_tree_sum(lanes);
    if (threadIdx.x == 0) partials[positions[c]] = lanes[0];
    __syncthreads();  // lanes is reused by the next chunk
  }
}

// A sharded step's partial sums in registration order (io.fusedopt.ShardedOptimizer on CUDA):
// out[i] = gathered[order[i]], where gathered holds every rank's partial sums after an NCCL
// all-gather (rank r's at r * the largest rank's count) and order places each chunk's at its
// position in the global registration order, which fusedopt_finalize_step then adds as an
// unsharded step does.
extern "C" __global__ void fusedopt_order_partials(const double* __restrict__ gathered, const int* __restrict__ order,
                                                   int count, double* __restrict__ out) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < count; i += gridDim.x * blockDim.x) out[i] = gathered[order[i]];
}

// GradScaler's update (torch._amp_update_scale_), after the step's verdict: a non-finite gradient
// multiplies the scale by backoff_factor; growth_interval clean steps in a row multiply it by
// growth_factor (kept only when finite). The next step's gradient is read with its inverse,
// computed in double and rounded once, as GradScaler's unscale does.
__device__ __forceinline__ void fo_update_loss_scale(FoControl* control, bool nonfinite) {
  float scale = control->loss_scale;
  // As torch._amp_update_scale_: the float32 scale times the double factor, rounded once.
  if (nonfinite) {
    scale = fo_f(__dmul_rn((double)scale, control->backoff_factor));
    control->growth_tracker = 0;
    control->scale_backoffs += 1;
  } else {
    const int successful = control->growth_tracker + 1;
    if (successful == control->growth_interval) {
      const float grown = fo_f(__dmul_rn((double)scale, control->growth_factor));
      if (isfinite(grown)) {
        scale = grown;
        control->scale_growths += 1;
      }
      control->growth_tracker = 0;
    } else {
      control->growth_tracker = successful;
    }
  }
  control->loss_scale = scale;
  control->inv_grad_scale = fo_f(__ddiv_rn(1.0, (double)scale));
}

// One block of FO_LANES threads. groups holds FO_GROUP_INFO_STRIDE ints per entry (a group's
// cohort of tensors with one step offset): the host's kernel index, its step-independent flags,
// its number of schedule segments, which sit at segments + FO_MAX_SEGMENTS * e, and its step
// offset; hyper holds FO_HYPER_STRIDE floats per entry.
extern "C" __global__ void fusedopt_finalize_step(FoControl* __restrict__ control,
                                                  const double* __restrict__ partials, int partial_count,
                                                  const float* __restrict__ hyper,
                                                  const int* __restrict__ groups, int group_count,
                                                  const FoSegment* __restrict__ segments,
                                                  FoEntryStep* __restrict__ steps, int* __restrict__ flags) {
  __shared__ double lanes[FO_LANES];
  double sum = 0.0;
  for (int i = threadIdx.x; i < partial_count; i += FO_LANES) sum = __dadd_rn(sum, partials[i]);
  lanes[threadIdx.x] = sum;
  fo_tree_sum(lanes);
  if (threadIdx.x != 0) return;

  const double total = lanes[0];
  const bool checked = control->check_grads != 0;
  const bool nonfinite = checked && !isfinite(total);
  const double norm = __dsqrt_rn(total);
  control->grad_sq_sum = checked ? total : __longlong_as_double(0x7FF8000000000000LL);
  control->grad_norm = checked ? fo_f(norm) : __int_as_float(0x7FC00000);
  control->found_nonfinite = nonfinite ? 1 : 0;
  const float step_inv_grad_scale = control->inv_grad_scale;
  control->step_inv_grad_scale = step_inv_grad_scale;
  if (control->dynamic_scaling) fo_update_loss_scale(control, nonfinite);
  float clip = 1.f;
  const float max_norm = control->max_grad_norm;
  if (checked && max_norm > 0.f) {
    // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6), clamped to at most 1 (NaN stays NaN).
    const double coef = __ddiv_rn((double)max_norm, __dadd_rn(norm, 1e-6));
    clip = coef >= 1.0 ? 1.f : fo_f(coef);
  }
  // Written before a skip too: a skipped step reports its own factor, never the previous step's.
  control->clip_coef = clip;
  if (nonfinite && control->skip_nonfinite) {
    control->skip = 1;
    control->skipped_steps += 1;
    return;
  }
  control->skip = 0;
  const long long step = control->step + 1;
  control->step = step;

  // The first-step rule (a momentum buffer starts as the gradient) is per entry: see below.
  const int step_flags = (step_inv_grad_scale != 1.0f ? FO_UNSCALE : 0)
                       | (clip != 1.f ? FO_CLIP : 0);
  for (int e = 0; e < group_count; e++) {
    const int* info = groups + FO_GROUP_INFO_STRIDE * e;
    const float* h = hyper + FO_HYPER_STRIDE * e;
    // The schedule follows the optimizer's counter (LambdaLR per optimizer), whatever the entry's
    // offset: the steps applied before this one (t - 1), plus the skipped ones with the iterations
    // clock (GroupTable.schedulerStep).
    const long long scheduler_step = step - 1 + (info[FO_INFO_SCHEDULE_CLOCK] ? control->skipped_steps : 0);
    const float lr = fo_scheduled_lr(h[FO_H_LR], segments + FO_MAX_SEGMENTS * e, info[2], scheduler_step);
    // Bias corrections, Adagrad's decay and the first-step rule follow the entry's own step; the
    // update kernels turn it and the lr into their family's scalars.
    const long long offset = (long long)(((unsigned long long)(unsigned int)info[FO_INFO_OFFSET_HI] << 32)
                                         | (unsigned long long)(unsigned int)info[FO_INFO_OFFSET_LO]);
    const long long own_step = step - offset;
    steps[e].step = own_step;
    steps[e].lr = lr;
    flags[e] = info[1] | step_flags | (own_step == 1 ? FO_FIRST_STEP : 0);
  }
}

// Per tensor of a layer-wise batch, its two sums of squares (io.fusedopt.internal.TensorNorms):
// lane l adds the partial sums of the tensor's chunks l, l + FO_LANES, ... in order (chunk_sums
// holds two per chunk, written by the norm pass; a tensor's chunks are consecutive, from
// tensor_chunks[2t], tensor_chunks[2t + 1] of them), then the lanes are tree-summed. One block of
// FO_LANES threads per tensor, grid-stride over the tensors.
extern "C" __global__ void fusedopt_tensor_norms(const int* __restrict__ tensor_chunks, int tensor_count,
                                                 const FoControl* __restrict__ control,
                                                 const double* __restrict__ chunk_sums,
                                                 double* __restrict__ tensor_sums) {
  __shared__ double lanes_a[FO_LANES];
  __shared__ double lanes_b[FO_LANES];
  if (control->skip) return;
  for (int t = blockIdx.x; t < tensor_count; t += gridDim.x) {
    const int first = tensor_chunks[2 * t], count = tensor_chunks[2 * t + 1];
    double sum_a = 0.0, sum_b = 0.0;
    for (int i = threadIdx.x; i < count; i += FO_LANES) {
      sum_a = __dadd_rn(sum_a, chunk_sums[2 * (first + i)]);
      sum_b = __dadd_rn(sum_b, chunk_sums[2 * (first + i) + 1]);
    }
    lanes_a[threadIdx.x] = sum_a;
    lanes_b[threadIdx.x] = sum_b;
    fo_tree_sum(lanes_a);
    fo_tree_sum(lanes_b);
    if (threadIdx.x == 0) {
      tensor_sums[2 * t] = lanes_a[0];
      tensor_sums[2 * t + 1] = lanes_b[0];
    }
    __syncthreads();  // the lanes are reused by the next tensor
  }
}
