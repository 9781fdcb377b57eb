// One kernel launch, run to completion on the calling thread (the device worker).
//
// Blocks run one after another; the threads of a block are user-level threads (a stack each and a
// hand-written context switch: ucontext saves the signal mask with a system call per switch) that
// run until they finish or wait at __syncthreads. Orders vary from launch to launch (forward,
// reverse, seeded random, for blocks and for threads) so that a kernel whose result depends on an
// order its code does not enforce gives different results.
//
// Every load and store of kernel code reaches check_access (gcc's -fsanitize=thread
// instrumentation, whose entry points are implemented here, so no sanitizer runtime is needed) and
// every typed access is checked for alignment (-fsanitize=alignment, whose handler is here too). A
// failed check ends the launch with the fault the hardware would raise.
//
// Races (FO_EMU_HAZARDS: fail, the default; report; off): device memory and the __shared__ memory
// have stamps (access_stamps.h) of who last wrote and read each byte during the current launch
// (device memory: which block) or barrier interval (shared memory: which thread of the block). An
// access that conflicts with one of another block, or of another thread since the last barrier, is
// a race: a read after another's write, a write after another's read or write (an atomic only
// with plain accesses). The first fails the launch (719), or is reported and the launch goes on.
#include "builtins.h"
#include "emulator.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

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

// Memory known to be valid, with the race checks' stamps of its first byte.
struct ValidRange {
  uintptr_t lo = 0, hi = 0;
  GranuleStamps* granules = nullptr;  // an allocation's
  AccessStamps* bytes = nullptr;      // the __shared__ memory's, per byte (its threads share words)
};
constexpr unsigned kValidRanges = 8;  // more than the arrays an update kernel touches

// The launch being run (only one at a time: run_kernel holds run_lock).
struct Running {
  const Kernel* kernel = nullptr;
  const unsigned char* args = nullptr;
  int device = 0;
  uint64_t launch_number = 0;
  Fiber* current = nullptr;
  void* scheduler_sp = nullptr;
  ValidRange valid[kValidRanges];  // ranges known to be valid: the allocations hit last
  unsigned next_valid = 0;          // the entry the next one replaces
  // Race checks: stamps above global_base belong to this launch; block_stamp is the running
  // block's. Stamps above shared_base belong to this barrier interval; a thread's is
  // shared_base + 1 + its linear index.
  bool check_races = false;
  uint32_t global_base = 0, block_stamp = 0, shared_base = 0;
  GranuleSplits splits;                 // the launch's granules whose bytes have stamps of their own
  const char* interval_file = nullptr;  // the barrier that began the interval; null: the block's start
  int interval_line = 0;
  uint64_t hazards = 0;                 // conflicting accesses (FO_EMU_HAZARDS=report goes on after them)
  Fault fault;
};

enum class HazardMode { Fail, Report, Off };

std::mutex run_lock;
Running* running = nullptr;
std::vector<Fiber> fibers;
unsigned char* stacks = nullptr;
std::vector<AccessStamps> shared_stamps;  // one per byte of the __shared__ section
uint32_t next_global_base = 0, next_shared_base = 0;

HazardMode hazard_mode() {
  static const HazardMode mode = [] {
    const char* v = getenv("FO_EMU_HAZARDS");
    if (!v || !*v || strcmp(v, "fail") == 0) return HazardMode::Fail;
    if (strcmp(v, "report") == 0) return HazardMode::Report;
    if (strcmp(v, "off") == 0) return HazardMode::Off;
    fprintf(stderr, "fusedopt CUDA emulator: FO_EMU_HAZARDS=%s is none of fail, report, off: races fail launches\n", v);
    return HazardMode::Fail;
  }();
  return mode;
}

// Appends a hazard report to the file FO_EMU_HAZARD_LOG names, if any (the test run reads it).
void log_hazard(const std::string& report) {
  static const char* const path = getenv("FO_EMU_HAZARD_LOG");
  if (!path || !*path) return;
  const int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "fusedopt CUDA emulator: cannot append to FO_EMU_HAZARD_LOG %s: %s\n", path, strerror(errno));
    return;
  }
  if (write(fd, report.data(), report.size()) != (ssize_t)report.size()) {
    fprintf(stderr, "fusedopt CUDA emulator: cannot append to FO_EMU_HAZARD_LOG %s: %s\n", path, strerror(errno));
  }
  close(fd);
}

// The first stamp of a new launch or interval with `parties` stamps; wraps around (clearing the
// stamps) long before the stamp bits run out.
uint32_t next_base(uint32_t* next, uint64_t parties, void (*clear)()) {
  if (*next + parties + 1 > kStampMask) {
    clear();
    *next = 0;
  }
  const uint32_t base = *next;
  *next += (uint32_t)parties + 1;
  return base;
}

void clear_shared_stamps() { std::fill(shared_stamps.begin(), shared_stamps.end(), AccessStamps{0, 0}); }

void ensure_stacks() {
  if (stacks) return;
  void* p = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    perror("fusedopt CUDA emulator: cannot map thread stacks");
    abort();
  }
  stacks = (unsigned char*)p;
  if (__start_fo_emu_shared) shared_stamps.resize(__stop_fo_emu_shared - __start_fo_emu_shared);
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

uint3 coordinates(uint64_t linear, unsigned x, unsigned y) {
  uint3 c;
  c.x = (unsigned)(linear % x);
  c.y = (unsigned)((linear / x) % y);
  c.z = (unsigned)(linear / ((uint64_t)x * y));
  return c;
}

const char* describe_thread(char* buf, size_t n) {
  const FoEmuBuiltins& b = fo_emu_builtins;
  snprintf(buf, n, "block (%u,%u,%u) thread (%u,%u,%u)", b.blockIdx.x, b.blockIdx.y, b.blockIdx.z, b.threadIdx.x,
           b.threadIdx.y, b.threadIdx.z);
  return buf;
}

// The first line of a fault's report: what, in which kernel, where, and how to replay the orders.
std::string fault_head(FaultKind kind, CUresult code) {
  const Running& r = *running;
  char where[96];
  char head[320];
  snprintf(head, sizeof head, "fusedopt CUDA emulator: %s in kernel %s, %s (launch #%" PRIu64 ", order seed %" PRIu64 ")\n",
           kind == FaultKind::Race                 ? "data race"
           : code == CUDA_ERROR_MISALIGNED_ADDRESS ? "misaligned address"
           : code == CUDA_ERROR_ILLEGAL_ADDRESS    ? "illegal address"
                                                   : "launch failure",
           r.kernel->name, describe_thread(where, sizeof where), r.launch_number, order_seed());
  return head;
}

// Ends the current thread's launch with a fault: back to the scheduler, never to the thread.
[[noreturn]] void raise_fault(FaultKind kind, CUresult code, const std::string& what) {
  Running& r = *running;
  r.fault.kind = kind;
  r.fault.code = code;
  r.fault.report = fault_head(kind, code) + "  " + what + "\n";
  r.current->state = ThreadState::Done;
  fo_emu_switch(&r.current->sp, r.scheduler_sp);
  abort();  // unreachable: a faulted thread is never resumed
}

const char* access_name(Access access) {
  return access == Access::Read ? "read" : access == Access::Write ? "write" : "atomic";
}

// Checks an access outside the valid ranges and returns the range it falls in, now valid; null
// for memory the race checks ignore (the built-in variables).
const ValidRange* check_slow(uintptr_t a, size_t n, Access access) {
  Running& r = *running;
  const char* op = access_name(access);
  const uintptr_t shared_lo = (uintptr_t)__start_fo_emu_shared, shared_hi = (uintptr_t)__stop_fo_emu_shared;
  ValidRange& valid = r.valid[r.next_valid];
  if (shared_lo && a >= shared_lo && a + n <= shared_hi) {
    valid = ValidRange{shared_lo, shared_hi, nullptr, shared_stamps.data()};
    r.next_valid = (r.next_valid + 1) % kValidRanges;
    return &valid;
  }
  const uintptr_t builtins_lo = (uintptr_t)&fo_emu_builtins;
  if (a >= builtins_lo && a + n <= builtins_lo + sizeof fo_emu_builtins) return nullptr;
  Allocation alloc;
  FaultKind kind;
  const std::string problem = access_problem(a, n, op, r.device, &kind, &alloc);
  if (!problem.empty()) raise_fault(kind, CUDA_ERROR_ILLEGAL_ADDRESS, problem);
  valid = ValidRange{alloc.base, alloc.base + alloc.size, alloc.stamps, nullptr};
  r.next_valid = (r.next_valid + 1) % kValidRanges;
  return &valid;
}

// ---- Races ----

// The party a stamp names: a thread of the running block (shared memory) or a block of the grid.
std::string describe_party(uint32_t stamp, bool shared) {
  const Running& r = *running;
  const FoEmuBuiltins& b = fo_emu_builtins;
  const uint32_t base = shared ? r.shared_base : r.global_base;
  const uint64_t linear = party_of(stamp) - base - 1;
  const uint3 c = shared ? coordinates(linear, b.blockDim.x, b.blockDim.y) : coordinates(linear, b.gridDim.x, b.gridDim.y);
  char text[64];
  snprintf(text, sizeof text, "%s (%u,%u,%u)", shared ? "thread" : "block", c.x, c.y, c.z);
  return text;
}

// A conflict of the current access (n bytes at a) with the earlier access of another party that
// the stamps of its byte at `at` record: fails the launch, or reports the launch's first one.
[[gnu::noinline]] void hazard(bool shared, uintptr_t a, size_t n, Access access, uintptr_t at, AccessStamps stamps,
                              const void* pc) {
  Running& r = *running;
  r.hazards++;
  const HazardMode mode = hazard_mode();
  if (mode == HazardMode::Report && r.hazards > 1) return;
  const uint32_t base = shared ? r.shared_base : r.global_base;
  const uint32_t me = shared ? base + 1 + r.current->linear : r.block_stamp;
  const char* others = shared ? "other threads" : "other blocks";
  // The earlier access: a write of another party takes precedence over reads.
  std::string earlier;
  const uint32_t w = stamps.writer, rd = stamps.reader;
  const bool other_wrote = is_current(w, base) && ((w & kSeveral) || party_of(w) != me);
  if (other_wrote && !(access == Access::Atomic && (w & kAtomicWrite))) {
    const char* verb = (w & kAtomicWrite) ? "updated atomically" : "wrote";
    earlier = party_of(w) != me ? describe_party(w, shared) + ((w & kSeveral) ? " and others " : " ") + verb
                             : std::string(others) + " " + verb;
  } else {
    earlier = party_of(rd) != me ? describe_party(rd, shared) + ((rd & kSeveral) ? " and others read" : " read")
                              : std::string(others) + " read";
  }
  char where[512];
  if (shared) {
    const std::string variable = describe_static(at);
    snprintf(where, sizeof where, "%s (%zu bytes at 0x%" PRIxPTR ")",
             variable.empty() ? "the block's __shared__ memory" : variable.c_str(), n, a);
  } else {
    Allocation alloc{};
    find_any(at, &alloc);
    snprintf(where, sizeof where, "byte %zu of allocation #%" PRIu64 " (%zu bytes at 0x%" PRIxPTR ")",
             (size_t)(at - alloc.base), alloc.id, n, a);
  }
  char since[320];
  if (!shared) snprintf(since, sizeof since, "earlier in this launch");
  else if (r.interval_file) snprintf(since, sizeof since, "since the last barrier (%s:%d)", r.interval_file, r.interval_line);
  else snprintf(since, sizeof since, "since the block began, with no barrier between");
  const std::string what = std::string(shared ? "shared" : "global") + " memory: " + access_name(access) + " of " + where +
                           ", which " + earlier + " " + since + "; " + describe_code(pc);
  const std::string report = fault_head(FaultKind::Race, CUDA_ERROR_LAUNCH_FAILED) + "  " + what + "\n";
  log_hazard(report);
  if (mode == HazardMode::Fail) raise_fault(FaultKind::Race, CUDA_ERROR_LAUNCH_FAILED, what);
  fputs(report.c_str(), stderr);
}

// Records an access in the stamps of the memory it falls in and reports the first byte that
// conflicts with another party's access.
inline void track_access(Running& r, const ValidRange& range, uintptr_t a, size_t n, Access access, const void* pc) {
  AccessStamps before{};
  if (range.bytes) {  // __shared__ memory: the threads of the running block
    const uint32_t me = r.shared_base + 1 + r.current->linear;
    const size_t i = record_bytes(range.bytes + (a - range.lo), n, access, me, r.shared_base, &before);
    if (i != n) hazard(true, a, n, access, a + i, before, pc);
    return;
  }
  // Device memory: the blocks of the launch, granule by granule; the access's first conflict is its report.
  uintptr_t conflict = 0;
  for (uintptr_t at = a, end = a + n; at < end;) {
    const uintptr_t offset = at - range.lo;
    const unsigned first = (unsigned)(offset % kGranule);
    const unsigned count = (unsigned)std::min<uintptr_t>(kGranule - first, end - at);
    AccessStamps granule_before;
    const unsigned i = record_granule(range.granules[offset / kGranule], first, count, access, r.block_stamp, r.global_base,
                                      r.splits, &granule_before);
    if (i != kGranule && !conflict) {
      conflict = at - first + i;
      before = granule_before;
    }
    at += count;
  }
  if (conflict) hazard(false, a, n, access, conflict, before, pc);
}

inline void check_access(uintptr_t a, size_t n, Access access, const void* pc) {
  Running* r = running;
  if (!r || !r->current) return;  // not kernel code (static initializers of the kernel units)
  const Fiber& f = *r->current;
  if (a >= f.stack_lo && a + n <= f.stack_hi) return;
  const ValidRange* range = nullptr;
  for (const ValidRange& v : r->valid) {
    if (a >= v.lo && a + n <= v.hi) {
      range = &v;
      break;
    }
  }
  if (!range && !(range = check_slow(a, n, access))) return;
  if (r->check_races) track_access(*r, *range, a, n, access, pc);
}

std::vector<unsigned> order(unsigned count, uint64_t mode, std::mt19937_64& random) {
  std::vector<unsigned> o(count);
  std::iota(o.begin(), o.end(), 0u);
  if (mode == 1) std::reverse(o.begin(), o.end());
  if (mode == 2) std::shuffle(o.begin(), o.end(), random);
  return o;
}

// A new interval of the block's threads, after a barrier (file:line) or at the block's start
// (null): what they accessed before it no longer conflicts.
void begin_interval(Running& r, unsigned threads, const char* file, int line) {
  if (!r.check_races) return;
  r.shared_base = next_base(&next_shared_base, threads, clear_shared_stamps);
  r.interval_file = file;
  r.interval_line = line;
}

// Runs the threads of the current block until all finished; false when the launch faulted.
bool run_block(Running& r, unsigned threads, uint64_t thread_mode, std::mt19937_64& random) {
  if (__start_fo_emu_shared) memset(__start_fo_emu_shared, 0xFF, __stop_fo_emu_shared - __start_fo_emu_shared);
  begin_interval(r, threads, nullptr, 0);
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
    begin_interval(r, threads, first->barrier_file, first->barrier_line);
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
  const KernelFloatEnvironment environment;
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
  // A grid too large for the stamp bits would take days here: it runs unchecked.
  r.check_races = hazard_mode() != HazardMode::Off && blocks < kStampMask / 2;
  if (r.check_races) r.global_base = next_base(&next_global_base, blocks, clear_access_stamps);
  for (uint64_t b : block_order) {
    fo_emu_builtins.blockIdx = coordinates(b, shape.grid[0], shape.grid[1]);
    r.block_stamp = r.global_base + 1 + (uint32_t)b;
    if (!run_block(r, threads, thread_mode, random)) break;
  }
  if (r.hazards > 1 && r.fault.kind == FaultKind::None) {
    fprintf(stderr, "fusedopt CUDA emulator: kernel %s, launch #%" PRIu64 ": %" PRIu64
            " conflicting accesses in all (the first is reported above)\n", kernel.name, launch_number, r.hazards);
  }
  running = nullptr;
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
// The return address is the kernel code's, for the race reports.
#define FO_EMU_TSAN_CHECK(a, n, access) fo_emu::check_access(a, n, fo_emu::Access::access, __builtin_return_address(0))
#define FO_EMU_TSAN_CALLBACKS(size)                                                                  \
  extern "C" void __tsan_read##size(uintptr_t a) { FO_EMU_TSAN_CHECK(a, size, Read); }             \
  extern "C" void __tsan_write##size(uintptr_t a) { FO_EMU_TSAN_CHECK(a, size, Write); }           \
  extern "C" void __tsan_unaligned_read##size(uintptr_t a) { FO_EMU_TSAN_CHECK(a, size, Read); }   \
  extern "C" void __tsan_unaligned_write##size(uintptr_t a) { FO_EMU_TSAN_CHECK(a, size, Write); }
FO_EMU_TSAN_CALLBACKS(1)
FO_EMU_TSAN_CALLBACKS(2)
FO_EMU_TSAN_CALLBACKS(4)
FO_EMU_TSAN_CALLBACKS(8)
FO_EMU_TSAN_CALLBACKS(16)
extern "C" void __tsan_read_range(uintptr_t a, size_t n) { FO_EMU_TSAN_CHECK(a, n, Read); }
extern "C" void __tsan_write_range(uintptr_t a, size_t n) { FO_EMU_TSAN_CHECK(a, n, Write); }
extern "C" void __tsan_init() {}  // each kernel unit's constructor calls it: nothing to set up

// The check of an atomic read-modify-write (device_runtime.h), which it then performs unobserved.
extern "C" void fo_emu_atomic_access(const void* address, size_t bytes, const void* code) {
  if (!running || !running->current) return;
  const uintptr_t a = (uintptr_t)address;
  if (a % bytes != 0) {
    char what[256];
    snprintf(what, sizeof what, "atomic access of %zu bytes at 0x%" PRIxPTR ", which is not aligned to %zu bytes", bytes, a,
             bytes);
    fo_emu::raise_fault(fo_emu::FaultKind::Misaligned, CUDA_ERROR_MISALIGNED_ADDRESS, what);
  }
  fo_emu::check_access(a, bytes, fo_emu::Access::Atomic, code);
}

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
