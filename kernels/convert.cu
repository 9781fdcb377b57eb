// Storage conversions on the device, for the test that holds them bit for bit against
// io.fusedopt.internal.Conversions (every update kernel uses the same fo_load/fo_store).
#include "fusedopt_common.cuh"

// For each input: its bf16 and fp16 encodings, and those decoded back to float32.
extern "C" __global__ void fusedopt_convert_round_trip(const float* __restrict__ in,
                                                       __nv_bfloat16* __restrict__ bf16_out,
                                                       __half* __restrict__ fp16_out,
                                                       float* __restrict__ bf16_back,
                                                       float* __restrict__ fp16_back, long long n) {
  FO_FOR_EACH_ELEMENT(i, n) {
    float x = in[i];
    fo_store(&bf16_out[i], x);
    fo_store(&fp16_out[i], x);
    bf16_back[i] = fo_load(bf16_out[i]);
    fp16_back[i] = fo_load(fp16_out[i]);
  }
}
