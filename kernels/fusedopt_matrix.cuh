// Matrix updates (Muon): each tensor is orthogonalized as a matrix by the Newton-Schulz iteration.
// Mirrored by io.fusedopt.internal.MatrixKernel, io.fusedopt.internal.NewtonSchulz and the host's
// per-tensor order, io.fusedopt.cpu.HostMatrixPhase, which this reproduces bit for bit. Included by
// the families of matrix kernels only, so that no other fatbin carries this code.
//
// A step runs, per matrix batch and after the finalize kernel (every launch does nothing when the
// finalize kernel skipped the step; all arguments are fixed when the step is prepared, so a step
// can be graph-captured):
//   1. NAME_input, per chunk of the segment table: the matrix input U of each element (InputOp, from
//      the param, the prepared gradient and the states, the update's own float32 operations),
//      written float32 into the tensor's X[0] in the Newton-Schulz layout (transposed when
//      rows > cols), and the chunk's sum of squares of U in the lane order of the norms
//      (fo_multi_tensor_norms) into chunk_sums[2c] (chunk_sums[2c + 1] = 0); no tensor is written;
//   2. fusedopt_tensor_norms (control.cu): per tensor, the sum of its chunks' partial sums;
//   3. NAME_normalize, per chunk: X[0] = U / (float)max(sqrt(sum), eps), NaN propagating;
//   4. per Newton-Schulz step, three NAME_product launches over the tensors with that step count
//      (gridDim.z): A = X X^T; B = fma(b, A, c * (A A)); X' = fma(a, X, B X), X and X' the two
//      halves of the ping-pong pair. In fast mode (Muon.Numerics.FAST) the three products are cuBLAS
//      strided batched GEMMs over the tensors of one shape (bf16 inputs, fp32 accumulation and
//      results; the host queues them, io.fusedopt.cuda.CublasGemm) and NAME_fast does the rest:
//      Xh = bf16(X); [A = Xh Xh^T]; Sh = bf16(A); [B = Sh Sh]; B = fma(b, A, c * B), Sh = bf16(B);
//      [X' = Sh Xh]; X' = fma(a, X, X'), the brackets being cuBLAS's;
//   5. NAME / NAME_mixed, per chunk: the update Op(p, g, st), whose last slot st[SLOTS - 1] is the
//      orthogonalized O read from the final X (transposed back); the states before it are stored.
#pragma once
#include "fusedopt_scalars.cuh"

// Per tensor of a matrix batch, parallel to its FoTensor table: the workspaces the step program
// allocates when it prepares the step (io.fusedopt.cuda.CudaStepProgram) and the tensor's shape.
struct FoMatrix {          // 64 bytes
  float* x[2];             //  0, 8: m x n, row-major, m = min(rows, cols), n = max(rows, cols)
  float* gram;             // 16: A, m x m
  float* poly;             // 24: B, m x m
  int rows;                // 32: the param's shape
  int cols;                // 36
  int result;              // 40: the x holding O after the group's steps (the step count's parity)
  int reserved;            // 44
  __nv_bfloat16* x_half;   // 48: fast mode's bf16 X, m x n (null in exact mode)
  __nv_bfloat16* square_half;  // 56: fast mode's bf16 A, then B, m x m (null in exact mode)
};

// The three products of a Newton-Schulz step (NAME_product's `product` argument).
#define FO_PRODUCT_GRAM 0     // A = X X^T
#define FO_PRODUCT_SQUARE 1   // B = fma(b, A, c * (A A))
#define FO_PRODUCT_COMBINE 2  // X' = fma(a, X, B X)
// The elementwise passes of fast mode's Newton-Schulz step (NAME_fast's `pass` argument).
#define FO_FAST_ROUND_X 0      // Xh = bf16(X)
#define FO_FAST_ROUND_GRAM 1   // Sh = bf16(A)
#define FO_FAST_POLYNOMIAL 2   // B = fma(b, A, c * B), B holding Sh Sh; Sh = bf16(B)
#define FO_FAST_COMBINE 3      // X' = fma(a, X, X'), X' holding Sh Xh
// Output tile edge of NAME_product: blocks of FO_MATRIX_TILE x FO_MATRIX_TILE threads.
#define FO_MATRIX_TILE 16

// Where element k of a rows x cols param lies in the Newton-Schulz layout: transposed when rows > cols.
__device__ __forceinline__ long long fo_matrix_index(const FoMatrix& m, long long k) {
  if (m.rows <= m.cols) return k;
  const long long i = k / m.cols, j = k - i * m.cols;
  return j * m.rows + i;
}

// Pass 1: per chunk, U into X[0] and the chunk's sum of squares of U. Any storage formats (the
// loads read each operand's format). Launched with FO_LANES threads per block; lanes is 2 x
// FO_LANES doubles of shared memory declared by the entry point.
template <int SLOTS, typename InputOp, typename Scalars>
__device__ __forceinline__ void fo_matrix_input(const FoTensor* __restrict__ tensors, const FoChunk* __restrict__ chunks,
                                                int chunk_count, const FoControl* __restrict__ control,
                                                const float* __restrict__ hyper, const FoEntryStep* __restrict__ steps,
                                                const int* __restrict__ flags, const FoMatrix* __restrict__ matrices,
                                                double* __restrict__ chunk_sums, double (*lanes)[FO_LANES]) {
  if (control->skip) return;
  const FoGradPrep prep{control->step_inv_grad_scale, control->clip_coef};
  fo_for_each_chunk<Scalars>(tensors, chunks, chunk_count, hyper, steps, flags,
      [&](int c, int tensor, const FoTensor& t, long long from, long long to, int f, const Scalars& s) {
        const InputOp op{s, f};
        const FoMatrix m = matrices[tensor];
        double sum = 0.0;
        for (long long k = from + threadIdx.x; k < to; k += FO_LANES) {
          const float p = fo_load_param<true>(t, k);
          const float g = fo_load_grad<true>(t, k, prep, f);
          float st[3] = {0.f, 0.f, 0.f};
#pragma unroll
          for (int j = 0; j < SLOTS - 1; j++) if (t.state[j]) st[j] = fo_load_at<true>(t.state[j], t.state_dtype, k);
          const float u = op(p, g, st);
          m.x[0][fo_matrix_index(m, k)] = u;
          const double x = u;
          sum = __dadd_rn(sum, __dmul_rn(x, x));
        }
        lanes[0][threadIdx.x] = sum;
        fo_tree_reduce<1>(lanes, FoSum{});
        if (threadIdx.x == 0) {
          chunk_sums[2 * c] = lanes[0][0];
          chunk_sums[2 * c + 1] = 0.0;
        }
        __syncthreads();  // the lanes are reused by the next chunk
      });
}

// Pass 3: per chunk, X[0] divided by the tensor's norm, (float)max(sqrt(sum), eps) in double (NaN
// when the sum is NaN, as Java's Math.max). Elementwise in place: the layout does not matter.
template <typename Scalars>
__device__ __forceinline__ void fo_matrix_normalize(const FoTensor* __restrict__ tensors, const FoChunk* __restrict__ chunks,
                                                    int chunk_count, const FoControl* __restrict__ control,
                                                    const float* __restrict__ hyper, const FoEntryStep* __restrict__ steps,
                                                    const int* __restrict__ flags, const FoMatrix* __restrict__ matrices,
                                                    const double* __restrict__ tensor_sums) {
  if (control->skip) return;
  fo_for_each_chunk<Scalars>(tensors, chunks, chunk_count, hyper, steps, flags,
      [&](int, int tensor, const FoTensor&, long long from, long long to, int, const Scalars& s) {
        const double root = __dsqrt_rn(tensor_sums[2 * tensor]), eps = s.ns_eps;
        const float norm = fo_f((root > eps || root != root) ? root : eps);
        float* x = matrices[tensor].x[0];
        for (long long k = from + threadIdx.x; k < to; k += blockDim.x) x[k] = __fdiv_rn(x[k], norm);
      });
}

// Pass 4: one product of a Newton-Schulz step for the tensor members[blockIdx.z], one
// FO_MATRIX_TILE x FO_MATRIX_TILE tile of the output per block, one element per thread: every
// element starts at +0 and takes acc = fma(P[i][k], Q[k][j], acc) for k increasing, the k range
// walked in tiles through shared memory (ps, qs: declared by the entry point) and never past its
// end (a padded fma(0, 0, -0) would turn a -0 into +0). Blocks outside the member's output return.
template <typename Scalars>
__device__ __forceinline__ void fo_matrix_product(const FoTensor* __restrict__ tensors, const FoMatrix* __restrict__ matrices,
                                                  const int* __restrict__ members, const FoControl* __restrict__ control,
                                                  const float* __restrict__ hyper, const FoEntryStep* __restrict__ steps,
                                                  const int* __restrict__ flags, int product, int step,
                                                  float (*ps)[FO_MATRIX_TILE], float (*qs)[FO_MATRIX_TILE]) {
  if (control->skip) return;
  const int tensor = members[blockIdx.z];
  const FoMatrix mx = matrices[tensor];
  const long long m = mx.rows < mx.cols ? mx.rows : mx.cols, n = mx.rows < mx.cols ? mx.cols : mx.rows;
  const long long out_cols = product == FO_PRODUCT_COMBINE ? n : m;
  const long long depth = product == FO_PRODUCT_GRAM ? n : m;
  const long long row0 = (long long)blockIdx.y * FO_MATRIX_TILE, col0 = (long long)blockIdx.x * FO_MATRIX_TILE;
  if (row0 >= m || col0 >= out_cols) return;
  const long long i = row0 + threadIdx.y, j = col0 + threadIdx.x;
  const float* x = mx.x[step & 1];
  // P is row-major with `depth` columns; Q(k, j) is X[j][k] (the Gram matrix), A[k][j] or X[k][j].
  const float* p = product == FO_PRODUCT_GRAM ? x : product == FO_PRODUCT_SQUARE ? mx.gram : mx.poly;
  float acc = 0.f;
  for (long long k0 = 0; k0 < depth; k0 += FO_MATRIX_TILE) {
    const long long kp = k0 + threadIdx.x, kq = k0 + threadIdx.y;
    ps[threadIdx.y][threadIdx.x] = (i < m && kp < depth) ? p[i * depth + kp] : 0.f;
    float q = 0.f;
    if (j < out_cols && kq < depth) {
      q = product == FO_PRODUCT_GRAM ? x[j * n + kq] : product == FO_PRODUCT_SQUARE ? mx.gram[kq * m + j] : x[kq * n + j];
    }
    qs[threadIdx.y][threadIdx.x] = q;
    __syncthreads();
    const int end = depth - k0 < FO_MATRIX_TILE ? (int)(depth - k0) : FO_MATRIX_TILE;
    for (int kk = 0; kk < end; kk++) acc = __fmaf_rn(ps[threadIdx.y][kk], qs[kk][threadIdx.x], acc);
    __syncthreads();  // the tiles are refilled next
  }
  if (i >= m || j >= out_cols) return;
  const int e = tensors[tensor].group;
  const Scalars s = Scalars::of(hyper + FO_HYPER_STRIDE * e, steps[e].lr, flags[e], steps[e].step);
  if (product == FO_PRODUCT_GRAM) {
    mx.gram[i * m + j] = acc;
  } else if (product == FO_PRODUCT_SQUARE) {
    mx.poly[i * m + j] = __fmaf_rn(s.ns_b, mx.gram[i * m + j], __fmul_rn(s.ns_c, acc));
  } else {
    mx.x[(step + 1) & 1][i * n + j] = __fmaf_rn(s.ns_a, x[i * n + j], acc);
  }
}

// Pass 4 in fast mode: one elementwise pass (FO_FAST_*) of step `step` over the tensor
// members[blockIdx.z], grid-strided over its m x n or m x m elements. Each element is one rounding
// (to bf16, nearest even) or one float32 operation of the exact iteration's, so only the cuBLAS
// products between them differ from exact mode.
template <typename Scalars>
__device__ __forceinline__ void fo_matrix_fast(const FoTensor* __restrict__ tensors, const FoMatrix* __restrict__ matrices,
                                               const int* __restrict__ members, const FoControl* __restrict__ control,
                                               const float* __restrict__ hyper, const FoEntryStep* __restrict__ steps,
                                               const int* __restrict__ flags, int pass, int step) {
  if (control->skip) return;
  const int tensor = members[blockIdx.z];
  const FoMatrix mx = matrices[tensor];
  const long long m = mx.rows < mx.cols ? mx.rows : mx.cols, n = mx.rows < mx.cols ? mx.cols : mx.rows;
  const long long count = (pass == FO_FAST_ROUND_X || pass == FO_FAST_COMBINE) ? m * n : m * m;
  const int e = tensors[tensor].group;
  const Scalars s = Scalars::of(hyper + FO_HYPER_STRIDE * e, steps[e].lr, flags[e], steps[e].step);
  const float* x = mx.x[step & 1];
  float* next = mx.x[(step + 1) & 1];
  for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < count; k += (long long)gridDim.x * blockDim.x) {
    if (pass == FO_FAST_ROUND_X) {
      mx.x_half[k] = __float2bfloat16_rn(x[k]);
    } else if (pass == FO_FAST_ROUND_GRAM) {
      mx.square_half[k] = __float2bfloat16_rn(mx.gram[k]);
    } else if (pass == FO_FAST_POLYNOMIAL) {
      const float b = __fmaf_rn(s.ns_b, mx.gram[k], __fmul_rn(s.ns_c, mx.poly[k]));
      mx.poly[k] = b;
      mx.square_half[k] = __float2bfloat16_rn(b);
    } else {
      next[k] = __fmaf_rn(s.ns_a, x[k], next[k]);
    }
  }
}

// Pass 5: per chunk and element, op(p, g, st) with st[SLOTS - 1] = O, then the param (master,
// rounding, stochastic rounding) and the states before O stored. Scalars::matrix completes the
// scalars with the tensor's shape.
template <int SLOTS, bool MIXED, typename Op, typename Scalars>
__device__ __forceinline__ void fo_matrix_update(const FoTensor* __restrict__ tensors, const FoChunk* __restrict__ chunks,
                                                 int chunk_count, const FoControl* __restrict__ control,
                                                 const float* __restrict__ hyper, const FoEntryStep* __restrict__ steps,
                                                 const int* __restrict__ flags, const FoMatrix* __restrict__ matrices) {
  if (control->skip) return;
  const FoGradPrep prep{control->step_inv_grad_scale, control->clip_coef};
  const FoRounding rounding{control->rounding_seed, control->step};
  fo_for_each_chunk<Scalars>(tensors, chunks, chunk_count, hyper, steps, flags,
      [&](int, int tensor, const FoTensor& t, long long from, long long to, int f, Scalars s) {
        const FoMatrix m = matrices[tensor];
        s.matrix(m.rows, m.cols, f);
        const Op op{s, f};
        const float* orthogonal = m.x[m.result];
        for (long long k = from + threadIdx.x; k < to; k += blockDim.x) {
          float p = fo_load_param<MIXED>(t, k);
          const float g = fo_load_grad<MIXED>(t, k, prep, f);
          float st[3] = {0.f, 0.f, 0.f};
#pragma unroll
          for (int j = 0; j < SLOTS - 1; j++) if (t.state[j]) st[j] = fo_load_at<MIXED>(t.state[j], t.state_dtype, k);
          st[SLOTS - 1] = orthogonal[fo_matrix_index(m, k)];
          op(p, g, st);
          fo_store_param<MIXED>(t, k, p, rounding, f);
#pragma unroll
          for (int j = 0; j < SLOTS - 1; j++) if (t.state[j]) fo_store_at<MIXED>(t.state[j], t.state_dtype, k, st[j]);
        }
      });
}

// The entry points of a matrix kernel (io.fusedopt.internal.MatrixKernel): the input pass, the
// normalization, the Newton-Schulz products, and the update, float32 storage only and any storage
// formats. InputOp and Op are built from Scalars::of, whose first members are the Newton-Schulz
// coefficients and eps (ns_a, ns_b, ns_c, ns_eps); Scalars::matrix(rows, cols, flags) completes
// the update's scalars with the tensor's shape. SLOTS counts O, the last slot.
#define FO_MATRIX_KERNELS(name, SLOTS, InputOp, Op, Scalars)                                          \
  extern "C" __global__ void name##_input(const FoTensor* tensors, const FoChunk* chunks,             \
                                          int chunk_count, const FoControl* control,                   \
                                          const float* hyper, const FoEntryStep* steps,                \
                                          const int* flags, const FoMatrix* matrices,                  \
                                          double* chunk_sums) {                                        \
    __shared__ double lanes[1][FO_LANES];                                                              \
    fo_matrix_input<SLOTS, InputOp, Scalars>(tensors, chunks, chunk_count, control, hyper, steps,     \
                                             flags, matrices, chunk_sums, lanes);                      \
  }                                                                                                    \
  extern "C" __global__ void name##_normalize(const FoTensor* tensors, const FoChunk* chunks,         \
                                              int chunk_count, const FoControl* control,               \
                                              const float* hyper, const FoEntryStep* steps,            \
                                              const int* flags, const FoMatrix* matrices,              \
                                              const double* tensor_sums) {                             \
    fo_matrix_normalize<Scalars>(tensors, chunks, chunk_count, control, hyper, steps, flags, matrices, \
                                 tensor_sums);                                                         \
  }                                                                                                    \
  extern "C" __global__ void name##_product(const FoTensor* tensors, const FoMatrix* matrices,        \
                                            const int* members, const FoControl* control,              \
                                            const float* hyper, const FoEntryStep* steps,              \
                                            const int* flags, int product, int step) {                 \
    __shared__ float ps[FO_MATRIX_TILE][FO_MATRIX_TILE];                                               \
    __shared__ float qs[FO_MATRIX_TILE][FO_MATRIX_TILE];                                               \
    fo_matrix_product<Scalars>(tensors, matrices, members, control, hyper, steps, flags, product, step, \
                               ps, qs);                                                                \
  }                                                                                                    \
  extern "C" __global__ void name##_fast(const FoTensor* tensors, const FoMatrix* matrices,           \
                                         const int* members, const FoControl* control,                 \
                                         const float* hyper, const FoEntryStep* steps,                 \
                                         const int* flags, int pass, int step) {                       \
    fo_matrix_fast<Scalars>(tensors, matrices, members, control, hyper, steps, flags, pass, step);     \
  }                                                                                                    \
  extern "C" __global__ void name(const FoTensor* tensors, const FoChunk* chunks, int chunk_count,    \
                                  const FoControl* control, const float* hyper,                        \
                                  const FoEntryStep* steps, const int* flags,                          \
                                  const FoMatrix* matrices) {                                          \
    fo_matrix_update<SLOTS, false, Op, Scalars>(tensors, chunks, chunk_count, control, hyper, steps,   \
                                                flags, matrices);                                      \
  }                                                                                                    \
  extern "C" __global__ void name##_mixed(const FoTensor* tensors, const FoChunk* chunks,             \
                                          int chunk_count, const FoControl* control,                   \
                                          const float* hyper, const FoEntryStep* steps,                \
                                          const int* flags, const FoMatrix* matrices) {                \
    fo_matrix_update<SLOTS, true, Op, Scalars>(tensors, chunks, chunk_count, control, hyper, steps,    \
                                               flags, matrices);                                       \
  }
