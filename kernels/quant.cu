// Whole-tensor 8-bit blockwise quantization and its inverse (fusedopt_quant.cuh): for converting
// states between float32 and 8 bits outside a step (checkpoints), and for the tests that hold the
// device's rule bit for bit against io.fusedopt.internal.BlockwiseQuantization.
#include "fusedopt_common.cuh"
#include "fusedopt_quant.cuh"

// Quantizes in[0 .. n) with the code map `map` (256 floats): codes[i], one per element, and
// absmax[b], one per block of FO_QUANT_BLOCK (the last one may be partial). A thread block takes
// one quantization block at a time (grid-stride over the blocks); any blockDim works.
extern "C" __global__ void fusedopt_quantize_blocks(const float* __restrict__ in, long long n,
                                                    const float* __restrict__ map,
                                                    unsigned char* __restrict__ codes,
                                                    float* __restrict__ absmax) {
  __shared__ float table[FO_QUANT_CODES];
  __shared__ float magnitude[FO_QUANT_BLOCK];
  for (int c = threadIdx.x; c < FO_QUANT_CODES; c += blockDim.x) table[c] = map[c];
  const long long blocks = (n + FO_QUANT_BLOCK - 1) / FO_QUANT_BLOCK;
  for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
    const long long first = b * FO_QUANT_BLOCK;
    const int count = n - first < FO_QUANT_BLOCK ? (int)(n - first) : FO_QUANT_BLOCK;
    __syncthreads();  // the table is in; the previous block's readers of magnitude[0] are done
    for (int e = threadIdx.x; e < FO_QUANT_BLOCK; e += blockDim.x) {
      magnitude[e] = e < count ? fo_quant_magnitude(in[first + e]) : 0.0f;
    }
    // The largest magnitude by halving; exact, so the order does not matter.
    for (int width = FO_QUANT_BLOCK / 2; width > 0; width /= 2) {
      __syncthreads();
      for (int e = threadIdx.x; e < width; e += blockDim.x) magnitude[e] = fmaxf(magnitude[e], magnitude[e + width]);
    }
    __syncthreads();
    const float scale = fo_quant_absmax(magnitude[0]);
    if (threadIdx.x == 0) absmax[b] = scale;
    for (int e = threadIdx.x; e < count; e += blockDim.x) codes[first + e] = fo_quantize(in[first + e], scale, table);
  }
}

// The inverse: out[i] = map[codes[i]] * absmax[i / FO_QUANT_BLOCK].
extern "C" __global__ void fusedopt_dequantize_blocks(const unsigned char* __restrict__ codes,
                                                      const float* __restrict__ absmax, long long n,
                                                      const float* __restrict__ map, float* __restrict__ out) {
  FO_FOR_EACH_ELEMENT(i, n) out[i] = fo_dequantize(codes[i], absmax[i / FO_QUANT_BLOCK], map);
}
