// One kernel launch, run to completion on the calling thread (the device worker).
//
// Blocks run one after another; the threads of a block are user-level threads (a stack each and a
// hand-written context switch: ucontext saves the signal mask with a system call per switch) that
// run until they finish or wait at __syncthreads. Orders vary from launch to launch (forward,
// reverse, seeded random, for blocks and for threads) so that a kernel whose result depends on an
// order its code does not enforce gives different results.
//
// Every load and store of kernel code reaches check_access (gcc's -fsanitize=thread instrumentation,
// whose entry points are implemented here, so no sanitizer runtime is needed) and every typed access is checked
// for alignment (-fsanitize=alignment, whose handler is here too). A failed check ends the launch
// with the fault the hardware would raise.
#include "builtins.h"
#include "emulator.h"

#include <sys/mman.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>

FoEmuBuiltins fo_emu_builtins = {};

// Bounds of the kernels' __shared__ variables (device_runtime.h puts them in this section).
extern "C" __attribute__((weak, visibility("hidden"))) unsigned char __start_fo_emu_shared[];
extern "C" __attribute__((weak, visibility("hidden"))) unsigned char __stop_fo_emu_shared[];

extern "C" void fo_emu_switch(void** save_sp, void* next_sp);
extern "C" void fo_emu_fiber_start();
extern "C" void fo_emu_fiber_main();

// void fo_emu_switch(void** save_sp, void* next_sp): saves the callee-saved registers on the
// current stack, stores its pointer in *save_sp, and resumes the context saved at next_sp.
asm(R"(
  .text
  .globl fo_emu_switch
  .hidden fo_emu_switch
  .type fo_emu_switch, @function
fo_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fo_emu_switch, .-fo_emu_switch

  .globl fo_emu_fiber_start
  .hidden fo_emu_fiber_start
  .type fo_emu_fiber_start, @function
fo_emu_fiber_start:
  call fo_emu_fiber_main
  ud2
  .size fo_emu_fiber_start, .-fo_emu_fiber_start
)");

namespace fo_emu {
namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr unsigned kMaxThreads = 1024;

enum class ThreadState { Ready, AtBarrier, Done };

struct Fiber {
  void* sp = nullptr;
  uintptr_t stack_lo = 0, stack_hi = 0;
  uint3 tid{};
  unsigned linear = 0;
  ThreadState state = ThreadState::Ready;
  const char* barrier_file = nullptr;
  int barrier_line = 0;
};

// The launch being run (only one at a time: run_kernel holds run_lock).
struct Running {
  const Kernel* kernel = nullptr;
  const unsigned char* args = nullptr;
  int device = 0;
  uint64_t launch_number = 0;
  Fiber* current = nullptr;
  void* scheduler_sp = nullptr;
  uintptr_t cache_lo = 0, cache_hi = 0;  // a range known to be valid: the last allocation hit
  Fault fault;
};

std::mutex run_lock;
Running* running = nullptr;
std::vector<Fiber> fibers;
unsigned char* stacks = nullptr;

void ensure_stacks() {
  if (stacks) return;
  void* p = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    perror("fusedopt CUDA emulator: cannot map thread stacks");
    abort();
  }
  stacks = (unsigned char*)p;
  fibers.resize(kMaxThreads);
  for (unsigned i = 0; i < kMaxThreads; i++) {
    fibers[i].stack_lo = (uintptr_t)(stacks + i * kStackBytes);
    fibers[i].stack_hi = fibers[i].stack_lo + kStackBytes;
  }
}

// A fresh context that enters fo_emu_fiber_start: six zero registers under its return address,
// placed so that the stack is 16-byte aligned at the call in fo_emu_fiber_start.
void* fresh_context(const Fiber& f) {
  uintptr_t top = f.stack_hi & ~uintptr_t(15);
  uintptr_t ret = top - 24;  // ret % 16 == 8: after `ret`, rsp % 16 == 0
  *(uintptr_t*)ret = (uintptr_t)&fo_emu_fiber_start;
  uintptr_t sp = ret - 6 * sizeof(uintptr_t);
  memset((void*)sp, 0, 6 * sizeof(uintptr_t));
  return (void*)sp;
}

const char* describe_thread(char* buf, size_t n) {
  const FoEmuBuiltins& b = fo_emu_builtins;
  snprintf(buf, n, "block (%u,%u,%u) thread (%u,%u,%u)", b.blockIdx.x, b.blockIdx.y, b.blockIdx.z, b.threadIdx.x,
           b.threadIdx.y, b.threadIdx.z);
  return buf;
}

// Ends the current thread's launch with a fault: back to the scheduler, never to the thread.
[[noreturn]] void raise_fault(FaultKind kind, CUresult code, const std::string& what) {
  Running& r = *running;
  char where[96];
  char head[256];
  snprintf(head, sizeof head, "fusedopt CUDA emulator: %s in kernel %s, %s (launch #%" PRIu64 ", order seed %" PRIu64 ")\n",
           code == CUDA_ERROR_MISALIGNED_ADDRESS ? "misaligned address"
           : code == CUDA_ERROR_ILLEGAL_ADDRESS  ? "illegal address"
                                                 : "launch failure",
           r.kernel->name, describe_thread(where, sizeof where), r.launch_number, order_seed());
  r.fault.kind = kind;
  r.fault.code = code;
  r.fault.report = std::string(head) + "  " + what + "\n";
  r.current->state = ThreadState::Done;
  fo_emu_switch(&r.current->sp, r.scheduler_sp);
  abort();  // unreachable: a faulted thread is never resumed
}

void check_slow(uintptr_t a, size_t n, bool write) {
  Running& r = *running;
  const char* op = write ? "write" : "read";
  char what[512];
  const uintptr_t shared_lo = (uintptr_t)__start_fo_emu_shared, shared_hi = (uintptr_t)__stop_fo_emu_shared;
  if (shared_lo && a >= shared_lo && a + n <= shared_hi) {
    r.cache_lo = shared_lo, r.cache_hi = shared_hi;
    return;
  }
  const uintptr_t builtins_lo = (uintptr_t)&fo_emu_builtins;
  if (a >= builtins_lo && a + n <= builtins_lo + sizeof fo_emu_builtins) return;
  const int device = device_of_address(a);
  if (device < 0) {
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": not device memory (a host or null pointer)", op, n, a);
    raise_fault(FaultKind::HostPointer, CUDA_ERROR_ILLEGAL_ADDRESS, what);
  }
  if (device != r.device) {
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": memory of device %d, kernel runs on device %d", op, n, a,
             device, r.device);
    raise_fault(FaultKind::OtherDevice, CUDA_ERROR_ILLEGAL_ADDRESS, what);
  }
  Allocation alloc;
  if (!find_any(a, &alloc)) {
    if (find_below(a, &alloc)) {
      snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": %zu bytes after the end of %s allocation #%" PRIu64
               " (%zu bytes at 0x%" PRIxPTR ")", op, n, a, (size_t)(a - alloc.base - alloc.size), alloc.live ? "live" : "freed",
               alloc.id, alloc.size, alloc.base);
    } else {
      snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": in no allocation of device %d", op, n, a, device);
    }
    raise_fault(FaultKind::OutOfBounds, CUDA_ERROR_ILLEGAL_ADDRESS, what);
  }
  if (!alloc.live) {
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": use after free of allocation #%" PRIu64
             " (%zu bytes at 0x%" PRIxPTR ")", op, n, a, alloc.id, alloc.size, alloc.base);
    raise_fault(FaultKind::UseAfterFree, CUDA_ERROR_ILLEGAL_ADDRESS, what);
  }
  if (a + n > alloc.base + alloc.size) {
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": %zu bytes past the end of allocation #%" PRIu64
             " (%zu bytes at 0x%" PRIxPTR ")", op, n, a, (size_t)(a + n - alloc.base - alloc.size), alloc.id, alloc.size, alloc.base);
    raise_fault(FaultKind::OutOfBounds, CUDA_ERROR_ILLEGAL_ADDRESS, what);
  }
  r.cache_lo = alloc.base, r.cache_hi = alloc.base + alloc.size;
}

inline void check_access(uintptr_t a, size_t n, bool write) {
  Running* r = running;
  if (!r || !r->current) return;  // not kernel code (static initializers of the kernel units)
  const Fiber& f = *r->current;
  if (a >= f.stack_lo && a + n <= f.stack_hi) return;
  if (a >= r->cache_lo && a + n <= r->cache_hi) return;
  check_slow(a, n, write);
}

uint3 coordinates(uint64_t linear, unsigned x, unsigned y) {
  uint3 c;
  c.x = (unsigned)(linear % x);
  c.y = (unsigned)((linear / x) % y);
  c.z = (unsigned)(linear / ((uint64_t)x * y));
  return c;
}

std::vector<unsigned> order(unsigned count, uint64_t mode, std::mt19937_64& random) {
  std::vector<unsigned> o(count);
  std::iota(o.begin(), o.end(), 0u);
  if (mode == 1) std::reverse(o.begin(), o.end());
  if (mode == 2) std::shuffle(o.begin(), o.end(), random);
  return o;
}

// Runs the threads of the current block until all finished; false when the launch faulted.
bool run_block(Running& r, unsigned threads, uint64_t thread_mode, std::mt19937_64& random) {
  if (__start_fo_emu_shared) memset(__start_fo_emu_shared, 0xFF, __stop_fo_emu_shared - __start_fo_emu_shared);
  const dim3 bd = fo_emu_builtins.blockDim;
  for (unsigned i = 0; i < threads; i++) {
    Fiber& f = fibers[i];
    f.linear = i;
    f.tid = coordinates(i, bd.x, bd.y);
    f.state = ThreadState::Ready;
    f.sp = fresh_context(f);
  }
  std::vector<unsigned> o = order(threads, thread_mode, random);
  for (;;) {
    for (unsigned i : o) {
      Fiber& f = fibers[i];
      if (f.state != ThreadState::Ready) continue;
      r.current = &f;
      fo_emu_builtins.threadIdx = f.tid;
      fo_emu_switch(&r.scheduler_sp, f.sp);
      r.current = nullptr;
      if (r.fault.kind != FaultKind::None) return false;
    }
    unsigned waiting = 0, done = 0;
    const Fiber* first = nullptr;
    const Fiber* other = nullptr;
    for (unsigned i = 0; i < threads; i++) {
      const Fiber& f = fibers[i];
      if (f.state == ThreadState::Done) { done++; continue; }
      waiting++;
      if (!first) first = &f;
      else if (!other && (f.barrier_line != first->barrier_line || strcmp(f.barrier_file, first->barrier_file) != 0)) other = &f;
    }
    if (waiting == 0) return true;
    if (done > 0 || other) {
      char what[512];
      if (other) {
        snprintf(what, sizeof what, "threads of one block wait at different barriers: thread %u at %s:%d, thread %u at %s:%d",
                 first->linear, first->barrier_file, first->barrier_line, other->linear, other->barrier_file, other->barrier_line);
      } else {
        snprintf(what, sizeof what, "%u threads of the block wait at the barrier at %s:%d while %u threads have exited",
                 waiting, first->barrier_file, first->barrier_line, done);
      }
      char head[256];
      snprintf(head, sizeof head, "fusedopt CUDA emulator: barrier error in kernel %s, block (%u,%u,%u) (launch #%" PRIu64
               ", order seed %" PRIu64 ")\n", r.kernel->name, fo_emu_builtins.blockIdx.x, fo_emu_builtins.blockIdx.y,
               fo_emu_builtins.blockIdx.z, r.launch_number, order_seed());
      r.fault.kind = FaultKind::Barrier;
      r.fault.code = CUDA_ERROR_LAUNCH_FAILED;
      r.fault.report = std::string(head) + "  " + what + "\n";
      return false;
    }
    for (unsigned i = 0; i < threads; i++) {
      if (fibers[i].state == ThreadState::AtBarrier) fibers[i].state = ThreadState::Ready;
    }
    if (thread_mode == 2) std::shuffle(o.begin(), o.end(), random);
  }
}

}  // namespace

uint64_t order_seed() {
  static const uint64_t seed = [] {
    const char* s = getenv("FUSEDOPT_EMULATOR_SEED");
    return s ? strtoull(s, nullptr, 0) : 0x5EEDF00Dull;
  }();
  return seed;
}

Fault run_kernel(const Kernel& kernel, int device, const LaunchShape& shape, const unsigned char* args, uint64_t launch_number) {
  std::lock_guard<std::mutex> guard(run_lock);
  ensure_stacks();
  Running r;
  r.kernel = &kernel;
  r.args = args;
  r.device = device;
  r.launch_number = launch_number;
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(0x1F80);  // round to nearest, exceptions masked, subnormals kept (no FTZ/DAZ)
  running = &r;
  fo_emu_builtins.blockDim = dim3(shape.block[0], shape.block[1], shape.block[2]);
  fo_emu_builtins.gridDim = dim3(shape.grid[0], shape.grid[1], shape.grid[2]);
  const unsigned threads = shape.block[0] * shape.block[1] * shape.block[2];
  const uint64_t blocks = (uint64_t)shape.grid[0] * shape.grid[1] * shape.grid[2];
  std::mt19937_64 random(order_seed() ^ (launch_number * 0x9E3779B97F4A7C15ull));
  const uint64_t thread_mode = launch_number % 3, block_mode = (launch_number / 3) % 3;
  // Block order: forward, reverse or a random permutation (grids here are small).
  std::vector<uint64_t> block_order(blocks);
  std::iota(block_order.begin(), block_order.end(), uint64_t(0));
  if (block_mode == 1) std::reverse(block_order.begin(), block_order.end());
  if (block_mode == 2) std::shuffle(block_order.begin(), block_order.end(), random);
  for (uint64_t b : block_order) {
    fo_emu_builtins.blockIdx = coordinates(b, shape.grid[0], shape.grid[1]);
    if (!run_block(r, threads, thread_mode, random)) break;
  }
  running = nullptr;
  _mm_setcsr(csr);
  return r.fault;
}

}  // namespace fo_emu

using fo_emu::running;

extern "C" __attribute__((visibility("hidden"))) void fo_emu_fiber_main() {
  fo_emu::Running& r = *running;
  r.kernel->invoke(r.args);
  r.current->state = fo_emu::ThreadState::Done;
  fo_emu_switch(&r.current->sp, r.scheduler_sp);
  abort();  // unreachable: a finished thread is never resumed
}

extern "C" void fo_emu_syncthreads(const char* file, int line) {
  fo_emu::Running& r = *running;
  r.current->state = fo_emu::ThreadState::AtBarrier;
  r.current->barrier_file = file;
  r.current->barrier_line = line;
  fo_emu_switch(&r.current->sp, r.scheduler_sp);
}

// ---- gcc -fsanitize=thread callbacks (--param tsan-instrument-func-entry-exit=0) ----
// Called before each load and store of kernel code with its address (the unaligned variants where
// the type's alignment is below the access size; alignment itself is -fsanitize=alignment's check).
#define FO_EMU_TSAN_CALLBACKS(size)                                                                           \
  extern "C" void __tsan_read##size(uintptr_t a) { fo_emu::check_access(a, size, false); }                  \
  extern "C" void __tsan_write##size(uintptr_t a) { fo_emu::check_access(a, size, true); }                  \
  extern "C" void __tsan_unaligned_read##size(uintptr_t a) { fo_emu::check_access(a, size, false); }        \
  extern "C" void __tsan_unaligned_write##size(uintptr_t a) { fo_emu::check_access(a, size, true); }
FO_EMU_TSAN_CALLBACKS(1)
FO_EMU_TSAN_CALLBACKS(2)
FO_EMU_TSAN_CALLBACKS(4)
FO_EMU_TSAN_CALLBACKS(8)
FO_EMU_TSAN_CALLBACKS(16)
extern "C" void __tsan_read_range(uintptr_t a, size_t n) { fo_emu::check_access(a, n, false); }
extern "C" void __tsan_write_range(uintptr_t a, size_t n) { fo_emu::check_access(a, n, true); }
extern "C" void __tsan_init() {}  // each kernel unit's constructor calls it: nothing to set up

// ---- UBSan alignment check (-fsanitize=alignment): the layout of gcc's TypeMismatchData ----
struct FoEmuSourceLocation {
  const char* file;
  uint32_t line;
  uint32_t column;
};
struct FoEmuTypeDescriptor {
  uint16_t kind;
  uint16_t info;
  char name[1];
};
struct FoEmuTypeMismatch {
  FoEmuSourceLocation location;
  const FoEmuTypeDescriptor* type;
  unsigned char log_alignment;
  unsigned char check_kind;
};

extern "C" void __ubsan_handle_type_mismatch_v1(FoEmuTypeMismatch* data, uintptr_t pointer) {
  if (!running || !running->current) return;
  char what[512];
  const size_t alignment = size_t(1) << data->log_alignment;
  if (pointer == 0) {
    snprintf(what, sizeof what, "access through a null pointer to %s at %s:%u", data->type->name, data->location.file,
             data->location.line);
    fo_emu::raise_fault(fo_emu::FaultKind::HostPointer, CUDA_ERROR_ILLEGAL_ADDRESS, what);
  }
  snprintf(what, sizeof what, "access to %s at 0x%" PRIxPTR ", which is not aligned to %zu bytes, at %s:%u", data->type->name,
           pointer, alignment, data->location.file, data->location.line);
  fo_emu::raise_fault(fo_emu::FaultKind::Misaligned, CUDA_ERROR_MISALIGNED_ADDRESS, what);
}
extern "C" void __ubsan_handle_type_mismatch_v1_abort(FoEmuTypeMismatch* data, uintptr_t pointer) {
  __ubsan_handle_type_mismatch_v1(data, pointer);
}
