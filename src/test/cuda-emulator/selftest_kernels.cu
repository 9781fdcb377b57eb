// Kernels of the emulator's own tests (selftest.cpp), compiled only for the emulator: each one
// exercises a rule the emulator must enforce or a behaviour it must show.

// out[i] = i for i < n: in bounds when n fits the allocation, a fault otherwise.
extern "C" __global__ void emu_write_index(float* out, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
    out[i] = (float)i;
  }
}

extern "C" __global__ void emu_fill(float* out, float value, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x) {
    out[i] = value;
  }
}

// A 16-byte load: misaligned unless in is 16-byte aligned.
extern "C" __global__ void emu_load_float4(const float* in, float* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = reinterpret_cast<const float4*>(in)[0].x;
}

// Odd and even threads wait at different barriers.
extern "C" __global__ void emu_divergent_barrier(float* out) {
  if (threadIdx.x % 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.f;
}

// Thread 0 exits while the others wait at a barrier.
extern "C" __global__ void emu_exit_before_barrier(float* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1.f;
}

// What __shared__ memory holds before a block writes it.
extern "C" __global__ void emu_shared_initial(unsigned int* out) {
  __shared__ unsigned int initial[64];
  out[threadIdx.x] = initial[threadIdx.x];
}

// Correct only if __syncthreads is a real barrier: each thread reads what another one wrote.
extern "C" __global__ void emu_block_reverse(float* out) {
  __shared__ float values[1024];
  values[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = values[blockDim.x - 1 - threadIdx.x];
}

// A race: every thread writes the same word; the survivor tells the order threads ran in.
extern "C" __global__ void emu_last_writer(float* out) {
  out[0] = (float)(blockIdx.x * blockDim.x + threadIdx.x);
}
