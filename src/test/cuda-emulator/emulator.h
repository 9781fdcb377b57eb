// The CUDA driver emulator's internal interfaces (not seen by kernels or by JCuda).
//
//   memory.cpp     device address spaces, allocations, the checks on every kernel access
//   execution.cpp  a launch: blocks and their threads as user-level threads, barriers, faults
//   driver.cpp     contexts, streams and their worker, capture and graphs, the cu* entry points
//   registry.cpp   kernel families (one per kernels/*.cu) and the binaries that name them
//   host_work.h    the exported hook through which other test doubles queue work on streams
//                  (cublas.cpp, built as libcublas.so.12 beside libcuda.so.1)
#pragma once
#include <cuda.h>

#include "access_stamps.h"

#include <xmmintrin.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fo_emu {

constexpr int kDeviceCount = 2;

// ---- Kernels ----

// The arithmetic environment of a kernel launch, for the scope of one (a kernel, or host work and
// collectives queued as one): round to nearest, exceptions masked, subnormals kept (no FTZ/DAZ).
// The caller's is restored at the end of the scope.
class KernelFloatEnvironment {
 public:
  KernelFloatEnvironment() : saved_(_mm_getcsr()) { _mm_setcsr(0x1F80); }
  ~KernelFloatEnvironment() { _mm_setcsr(saved_); }
  KernelFloatEnvironment(const KernelFloatEnvironment&) = delete;
  KernelFloatEnvironment& operator=(const KernelFloatEnvironment&) = delete;

 private:
  const unsigned saved_;
};

// One kernel entry point compiled for the host, with what a launch needs to copy its arguments.
struct Kernel {
  const char* name;
  std::vector<size_t> param_sizes;
  std::vector<size_t> param_offsets;  // in the launch's argument block (each aligned to 16)
  size_t args_bytes;
  void (*invoke)(const unsigned char* args);  // calls the kernel with the arguments in args
};

struct Family {
  std::string name;                 // "adam" for kernels/adam.cu
  std::vector<Kernel> kernels;
  const unsigned char* image;       // the fatbin the Java side loads for this family (may be null)
  size_t image_size;
};

void register_family(Family family);
// The family whose binary is `image` (compared byte for byte), or null.
const Family* family_for_image(const void* image);

// ---- Memory ----

enum class FaultKind { None, OutOfBounds, UseAfterFree, HostPointer, OtherDevice, Misaligned, Barrier, Race };

struct Allocation {
  uintptr_t base;
  size_t size;
  int device;
  uint64_t id;
  bool live;
  GranuleStamps* stamps;  // while live: the race checks' stamps, one per 32-byte granule (access_stamps.h)
};

// Reserves device memory on `device` (filled with 0xFF bytes: NaN in every float format).
// Returns 0 when the device's capacity is exhausted.
uintptr_t device_alloc(int device, size_t bytes);
// Frees a live allocation by its base; false when `base` is not one.
bool device_free(uintptr_t base);
// The live allocation containing [address, address+bytes), or false.
bool find_live(uintptr_t address, size_t bytes, Allocation* out);
// The allocation (live or freed) containing address; false when none ever did.
bool find_any(uintptr_t address, Allocation* out);
// The allocation (live or freed) with the highest base at or below address; false when none.
bool find_below(uintptr_t address, Allocation* out);
// The device whose address space contains address, or -1.
int device_of_address(uintptr_t address);
size_t device_used(int device);
size_t device_capacity();
// Frees every live allocation of a device (primary context reset).
void free_all(int device);
// Zeroes the stamps of every live allocation (when the stamps run out and start again).
void clear_access_stamps();
// Why work on `device` may not `op` ("read", "write") the bytes [address, address+bytes): a host
// or null pointer, memory of another device, out of bounds, a use after free. Empty when it may;
// then *out is the live allocation holding them. The fault kind is set when not empty.
std::string access_problem(uintptr_t address, size_t bytes, const char* op, int device, FaultKind* kind, Allocation* out);

// ---- Execution ----

struct LaunchShape {
  unsigned grid[3];
  unsigned block[3];
};

struct Fault {
  FaultKind kind = FaultKind::None;
  CUresult code = CUDA_SUCCESS;
  std::string report;
};

// Runs one kernel launch to completion on the calling thread: every block, every thread, checked.
// `launch_number` varies the block and thread orders (forward, reverse, seeded random).
Fault run_kernel(const Kernel& kernel, int device, const LaunchShape& shape, const unsigned char* args,
                 uint64_t launch_number);

// ---- Symbols (symbols.cpp), for reports ----

// Where kernel code is: "libcuda.so.1+0x1234", the offset addr2line takes, and the command line.
std::string describe_code(const void* pc);
// The static variable that holds address ("kernel::name" for a __shared__ one) and the byte in
// it, from this library's symbol table; empty when unknown.
std::string describe_static(uintptr_t address);

// Seed of the random orders (FUSEDOPT_EMULATOR_SEED, default fixed); printed in fault reports.
uint64_t order_seed();

}  // namespace fo_emu
