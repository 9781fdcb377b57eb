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

// The order threads ran in, without a race: each takes the next slot of order with an atomic.
extern "C" __global__ void emu_arrival_order(unsigned int* counter, unsigned int* order) {
  order[atomicAdd(counter, 1u)] = blockIdx.x * blockDim.x + threadIdx.x;
}

// ---- Races: each kernel below has one unless its barrier argument is 1 ----

// Each thread writes its cell, then reads its neighbour's: a race without the barrier between.
extern "C" __global__ void emu_shared_neighbour(float* out, int barrier) {
  __shared__ float cells[1024];
  cells[threadIdx.x] = (float)threadIdx.x;
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = cells[(threadIdx.x + 1) % blockDim.x];
}

// Each thread reads its neighbour's cell, then overwrites its own: a write after another thread's
// read without the second barrier.
extern "C" __global__ void emu_shared_shift(float* out, int barrier) {
  __shared__ float cells[1024];
  cells[threadIdx.x] = (float)threadIdx.x;
  __syncthreads();
  const float next = cells[(threadIdx.x + 1) % blockDim.x];
  if (barrier) __syncthreads();
  cells[threadIdx.x] = next;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = cells[threadIdx.x];
}

// Thread 0 sets a __shared__ scalar (a constant address), every thread reads it.
extern "C" __global__ void emu_shared_flag(int* out, int barrier) {
  __shared__ int flag;
  if (threadIdx.x == 0) flag = 7;
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = flag;
}

// Every thread writes the same __shared__ word: a race whatever the barriers.
extern "C" __global__ void emu_shared_same_word(float* out) {
  __shared__ float word;
  word = (float)threadIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = word;
}

// Thread 0 of every block writes out[0]: a race between blocks.
extern "C" __global__ void emu_global_same_word(float* out) {
  if (threadIdx.x == 0) out[0] = (float)blockIdx.x;
}

// Block 1 copies what block 0 writes: a race between blocks (no order between them).
extern "C" __global__ void emu_global_handoff(float* data) {
  if (threadIdx.x != 0) return;
  if (blockIdx.x == 0) data[0] = 1.f;
  if (blockIdx.x == 1) data[1] = data[0];
}

// Block 0 adds atomically, block 1 reads the word plainly: a race (atomics only agree among themselves).
extern "C" __global__ void emu_global_atomic_then_read(unsigned int* counter, unsigned int* out) {
  if (threadIdx.x != 0) return;
  if (blockIdx.x == 0) atomicAdd(counter, 1u);
  if (blockIdx.x == 1) out[0] = counter[0];
}

// ---- No race ----

// Every block reads all of in and writes its own word of out; out's words are 16 bits, so two
// blocks write the two halves of one 32-bit word (bytes apart: no race).
extern "C" __global__ void emu_global_shared_input(const float* in, unsigned short* out, int n) {
  float sum = 0.f;
  for (int i = 0; i < n; i++) sum += in[i];
  if (threadIdx.x == 0) out[blockIdx.x] = (unsigned short)sum;
}
