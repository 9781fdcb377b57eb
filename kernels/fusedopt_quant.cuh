// 8-bit blockwise quantization of optimizer states (bitsandbytes' blockwise dynamic quantization):
// the device side of io.fusedopt.internal.BlockwiseQuantization, whose Javadoc and
// docs/algorithms.md ("8-bit blockwise states") state the rule. Bit for bit the same: every float
// operation is the Java one, rounded once (the _rn intrinsics), and the code search is the same
// sequence of comparisons.
//
// The code map (256 ascending float32 values: CodeMap.SIGNED or UNSIGNED, made on the host) is
// passed as a pointer, to global or shared memory; a kernel that quantizes much copies it to shared
// memory first.
#pragma once

// Elements per block, and values per code map. Mirrored by BlockwiseQuantization.BLOCK and CODES.
#define FO_QUANT_BLOCK 256
#define FO_QUANT_CODES 256

// What an element contributes to its block's absmax: |v|, or +infinity for NaN and +-infinity,
// which fo_quant_absmax turns into NaN. The magnitudes are never NaN, so their fmaxf is exact and
// any reduction order gives the same absmax.
__device__ __forceinline__ float fo_quant_magnitude(float v) {
  const float magnitude = fabsf(v);
  return magnitude <= __int_as_float(0x7f7fffff) ? magnitude : __int_as_float(0x7f800000);  // FLT_MAX, +inf
}

// The absmax from the largest magnitude of a block: itself, or NaN (Java's Float.NaN, bits
// 0x7fc00000) when the block held a NaN or an infinity.
__device__ __forceinline__ float fo_quant_absmax(float max_magnitude) {
  return max_magnitude <= __int_as_float(0x7f7fffff) ? max_magnitude : __int_as_float(0x7fc00000);
}

// The code of a normalized value x: bitsandbytes' quantize_2D search. Seven halvings from code 127
// end on an even code; x is compared with the float32 midpoint to its neighbour on x's side, and a
// tie stays on the even code. x <= map[0] and NaN give 0, x > map[255] gives 255.
__device__ __forceinline__ int fo_quant_code(float x, const float* map) {
  int pivot = FO_QUANT_CODES / 2 - 1;
  int below = 0;                   // the last pivot x was above
  int above = FO_QUANT_CODES - 1;  // the last pivot x was at or below
  for (int halving = FO_QUANT_CODES / 4; halving > 0; halving >>= 1) {
    if (x > map[pivot]) {
      below = pivot;
      pivot += halving;
    } else {
      above = pivot;
      pivot -= halving;
    }
  }
  const float value = map[pivot];
  if (x > value) return x > __fmul_rn(__fadd_rn(map[above], value), 0.5f) ? above : pivot;
  return x < __fmul_rn(__fadd_rn(map[below], value), 0.5f) ? below : pivot;
}

// The code of value in a block of the given absmax: the code of value / absmax (one IEEE
// division), the code of +0 when absmax is 0 (an all-zero block).
__device__ __forceinline__ unsigned char fo_quantize(float value, float absmax, const float* map) {
  return (unsigned char)fo_quant_code(absmax == 0.0f ? 0.0f : __fdiv_rn(value, absmax), map);
}

// map[code] * absmax.
__device__ __forceinline__ float fo_dequantize(unsigned char code, float absmax, const float* map) {
  return __fmul_rn(map[code], absmax);
}
