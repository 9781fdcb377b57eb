// Storage kernels that are not updates: the conversions test (held bit for bit against
// io.fusedopt.internal.Conversions; every update kernel uses the same fo_load/fo_store), and the
// zero fill behind DeviceOptimizer.zeroGrad().
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

// ---- Zero fill: every gradient of every format in one launch ----
// All-zero bits are +0 in float32, bf16 and fp16 alike, so the fill works on 16-bit units and
// needs no format. Mirrored by io.fusedopt.cuda.CudaZeroFill (byte layout); the chunks are those of
// io.fusedopt.internal.SegmentTable over lengths in 16-bit units (FoChunk, FO_CHUNK_ELEMENTS).

struct FoZeroSegment {     // 16 bytes
  unsigned short* base;    //  0: 2-byte aligned (every format's element size is 2 or 4)
  long long units;         //  8: length in 16-bit units
};

// A block clears one chunk at a time: the units before the first 16-byte boundary and after the
// last one one by one, the aligned middle with 16-byte stores.
extern "C" __global__ void fusedopt_zero_fill(const FoZeroSegment* __restrict__ segments,
                                              const FoChunk* __restrict__ chunks, int chunk_count) {
  for (int c = blockIdx.x; c < chunk_count; c += gridDim.x) {
    const FoChunk chunk = chunks[c];
    const FoZeroSegment segment = segments[chunk.tensor];
    unsigned short* base = segment.base;
    const long long begin = chunk.start;
    const long long end = begin + FO_CHUNK_ELEMENTS < segment.units ? begin + FO_CHUNK_ELEMENTS : segment.units;
    const unsigned long long address = reinterpret_cast<unsigned long long>(base + begin);
    const long long to_boundary = (long long)(((16ULL - address % 16ULL) % 16ULL) / 2ULL);
    const long long head = to_boundary < end - begin ? to_boundary : end - begin;
    for (long long k = begin + threadIdx.x; k < begin + head; k += blockDim.x) base[k] = 0;
    const long long middle = begin + head;
    const long long vectors = (end - middle) / 8;
    uint4* aligned = reinterpret_cast<uint4*>(base + middle);
    for (long long v = threadIdx.x; v < vectors; v += blockDim.x) aligned[v] = make_uint4(0u, 0u, 0u, 0u);
    for (long long k = middle + vectors * 8 + threadIdx.x; k < end; k += blockDim.x) base[k] = 0;
  }
}
