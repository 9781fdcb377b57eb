// The emulator's own tests, through the driver API as any client would call it: what it must
// compute, the orders it must vary, and every rule it must enforce. Prints one line per check and
// a summary; exits 1 if any check failed. Run by io.fusedopt.CudaEmulatorSelfTest.
//
// `selftest --hazards MODE` is a child the main run starts to try the other FO_EMU_HAZARDS modes:
// it launches one kernel with a race and exits 0 when the launch succeeded.
#include <cuda.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access_stamps.h"
#include "host_work.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

static int passed = 0, failed = 0;

static void check(bool ok, const char* what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  (ok ? passed : failed)++;
}

static void expect(CUresult got, CUresult want, const char* what) {
  if (got != want) printf("     (got %d, want %d)\n", (int)got, (int)want);
  check(got == want, what);
}

static CUcontext ctx0, ctx1;
static CUmodule module;
static const char kImage[] = "fusedopt-emulator-selftest-kernels";

static CUfunction function(const char* name) {
  CUfunction f = nullptr;
  if (cuModuleGetFunction(&f, module, name) != CUDA_SUCCESS) {
    printf("FAIL cuModuleGetFunction(%s)\n", name);
    exit(1);
  }
  return f;
}

static CUresult launch(const char* name, unsigned grid, unsigned block, CUstream stream, std::initializer_list<void*> args) {
  std::vector<void*> params(args);
  return cuLaunchKernel(function(name), grid, 1, 1, block, 1, 1, 0, stream, params.data(), nullptr);
}

static std::vector<float> read(CUdeviceptr p, size_t n) {
  std::vector<float> v(n);
  cuMemcpyDtoH(v.data(), p, n * sizeof(float));
  return v;
}

static unsigned bits(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}

// Releases the primary context to zero and takes it again: how a poisoned context recovers.
static void fresh_context() {
  while (cuDevicePrimaryCtxRelease(0) == CUDA_SUCCESS) {}
  cuDevicePrimaryCtxRetain(&ctx0, 0);
  cuCtxSetCurrent(ctx0);
  cuModuleLoadData(&module, kImage);
}

// A launch that must fault with `code`, reported at the next synchronization and by every later
// call, until the context is reset.
static void expect_fault(const char* what, CUresult code, const char* kernel, std::initializer_list<void*> args, unsigned block = 64,
                         unsigned grid = 1) {
  CUresult queued = launch(kernel, grid, block, CU_STREAM_LEGACY, args);
  CUresult sync = cuCtxSynchronize();
  CUdeviceptr p;
  CUresult after = cuMemAlloc(&p, 64);
  char text[256];
  snprintf(text, sizeof text, "%s: queued, then %d at synchronize and at the next call", what, (int)code);
  check(queued == CUDA_SUCCESS && sync == code && after == code, text);
  fresh_context();
}

// ---- Host work (host_work.h, the cuBLAS double's way onto streams) ----

// Doubles `n` floats at `data` each time it runs; counts its runs and its release.
struct Doubling {
  float* data;
  long long n;
  int* runs;
  int* released;
};

static CUresult enqueue_doubling(CUstream stream, CUdeviceptr data, size_t bytes, int* runs, int* released) {
  fo_emu_operand operand{data, bytes, 1, "data"};
  auto* work = new Doubling{reinterpret_cast<float*>(data), (long long)(bytes / sizeof(float)), runs, released};
  return fo_emu_enqueue_host_work(
      stream, "doubling", &operand, 1,
      [](void* p) {
        auto* d = static_cast<Doubling*>(p);
        for (long long i = 0; i < d->n; i++) d->data[i] *= 2;
        ++*d->runs;
        return CUDA_SUCCESS;
      },
      work,
      [](void* p) {
        auto* d = static_cast<Doubling*>(p);
        ++*d->released;
        delete d;
      });
}

// ---- Races ----

static std::string hazard_log;  // FO_EMU_HAZARD_LOG of this run
static size_t hazard_log_seen = 0;

// What the emulator appended to the hazard log since the last call.
static std::string new_hazard_reports() {
  std::ifstream in(hazard_log, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  const std::string added = text.size() > hazard_log_seen ? text.substr(hazard_log_seen) : std::string();
  hazard_log_seen = text.size();
  return added;
}

static int occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// A launch with a race fails as a fault does (719), and the one report it appends to the hazard
// log names the kernel and says each of `says`.
static void expect_race(const char* what, const char* kernel, unsigned grid, std::initializer_list<void*> args,
                        std::initializer_list<const char*> says) {
  expect_fault(what, CUDA_ERROR_LAUNCH_FAILED, kernel, args, 64, grid);
  const std::string report = new_hazard_reports();
  bool ok = occurrences(report, "fusedopt CUDA emulator: data race in kernel ") == 1 &&
            report.find(std::string("in kernel ") + kernel + ",") != std::string::npos &&
            report.find("code at libcuda.so.1+0x") != std::string::npos;
  for (const char* s : says) ok &= report.find(s) != std::string::npos;
  if (!ok) printf("     (reported: %s)\n", report.c_str());
  char text[256];
  snprintf(text, sizeof text, "%s: its report", what);
  check(ok, text);
}

// Device memory keeps stamps per 32-byte granule, splitting one into stamps per byte only when
// needed: it must find exactly the races that stamps per byte find (the reference), at the same
// byte, whatever the accesses. Random launches of 1 to 4 blocks make random reads, writes and
// atomics of 1 to 20 bytes anywhere in 96 bytes (across granules, unaligned).
static bool granules_agree_with_bytes(uint64_t seed, int launches) {
  using namespace fo_emu;
  std::mt19937_64 random(seed);
  constexpr unsigned kBytes = 3 * kGranule;
  std::vector<AccessStamps> bytes(kBytes, AccessStamps{0, 0});
  std::vector<GranuleStamps> granules(kBytes / kGranule, GranuleStamps{0, 0, 0, 0});
  uint32_t next_base = 0;
  auto stamp_if_current = [](uint32_t stamp, uint32_t base) { return is_current(stamp, base) ? stamp : 0; };
  for (int l = 0; l < launches; l++) {
    const unsigned blocks = 1 + (unsigned)(random() % 4);
    const uint32_t base = next_base;
    next_base += blocks + 1;
    GranuleSplits splits;
    const int accesses = (int)(random() % 24);
    for (int k = 0; k < accesses; k++) {
      const uint32_t me = base + 1 + (uint32_t)(random() % blocks);
      const unsigned kind = (unsigned)(random() % 10);
      const Access access = kind < 5 ? Access::Read : kind < 8 ? Access::Write : Access::Atomic;
      const unsigned n = 1 + (unsigned)(random() % 20), at = (unsigned)(random() % (kBytes - n + 1));
      AccessStamps by_byte{}, by_granule{};
      const size_t byte_hit = record_bytes(&bytes[at], n, access, me, base, &by_byte);
      size_t granule_hit = n;
      for (unsigned a = at; a < at + n;) {
        const unsigned first = a % kGranule, count = std::min<unsigned>((unsigned)kGranule - first, at + n - a);
        AccessStamps before{};
        const unsigned i = record_granule(granules[a / kGranule], first, count, access, me, base, splits, &before);
        if (i != kGranule && granule_hit == n) {
          granule_hit = a - first + i - at;
          by_granule = before;
        }
        a += count;
      }
      const bool same = byte_hit == granule_hit &&
                        (byte_hit == n || (stamp_if_current(by_byte.writer, base) == stamp_if_current(by_granule.writer, base) &&
                                           stamp_if_current(by_byte.reader, base) == stamp_if_current(by_granule.reader, base)));
      if (!same) {
        printf("     (seed %llu, launch %d: %s of %u bytes at %u by stamp %u: per byte %zu, per granule %zu)\n",
               (unsigned long long)seed, l, access == Access::Read ? "read" : access == Access::Write ? "write" : "atomic", n,
               at, me, byte_hit, granule_hit);
        return false;
      }
    }
  }
  return true;
}

// The child of `selftest --hazards MODE`: one launch with a race between blocks, in that mode.
static int race_in_mode(const char* mode) {
  setenv("FO_EMU_HAZARDS", mode, 1);
  CUdeviceptr out;
  if (cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS || cuCtxSetCurrent(ctx0) != CUDA_SUCCESS ||
      cuModuleLoadData(&module, kImage) != CUDA_SUCCESS || cuMemAlloc(&out, 64) != CUDA_SUCCESS) {
    return 2;
  }
  CUresult queued = launch("emu_global_same_word", 4, 64, CU_STREAM_LEGACY, {&out});
  return queued == CUDA_SUCCESS && cuCtxSynchronize() == CUDA_SUCCESS ? 0 : 1;
}

// Runs this program as the child of another FO_EMU_HAZARDS mode; its exit status.
static int run_child(const char* mode) {
  fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "selftest", "--hazards", mode, (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--hazards") == 0) return race_in_mode(argv[2]);
  // Races fail launches, and every report goes to a log of this run's own (read before the first launch).
  char log_template[] = "/tmp/fusedopt-emulator-hazards-XXXXXX";
  const int log_fd = mkstemp(log_template);
  if (log_fd < 0) {
    perror("selftest: cannot create the hazard log");
    return 1;
  }
  close(log_fd);
  hazard_log = log_template;
  setenv("FO_EMU_HAZARD_LOG", log_template, 1);
  setenv("FO_EMU_HAZARDS", "fail", 1);

  int version = 0, count = 0;
  check(cuDriverGetVersion(&version) == CUDA_SUCCESS && version >= 13000, "driver version is CUDA 13 or newer");
  CUdeviceptr early;
  expect(cuMemAlloc(&early, 4), CUDA_ERROR_NOT_INITIALIZED, "calls before cuInit fail");
  expect(cuInit(0), CUDA_SUCCESS, "cuInit");
  check(cuDeviceGetCount(&count) == CUDA_SUCCESS && count == 2, "two devices");
  char name[128];
  check(cuDeviceGetName(name, sizeof name, 1) == CUDA_SUCCESS && strstr(name, "fusedopt CUDA emulator") == name,
        "device names say emulator");
  expect(cuMemAlloc(&early, 4), CUDA_ERROR_INVALID_CONTEXT, "no current context: invalid context");

  cuDevicePrimaryCtxRetain(&ctx0, 0);
  cuCtxSetCurrent(ctx0);
  CUmodule other;
  const unsigned char not_ours[32] = {0x50, 0xED, 0x55, 0xBA, 1, 0, 16, 0, 16};
  expect(cuModuleLoadData(&other, not_ours), CUDA_ERROR_NO_BINARY_FOR_GPU, "an unknown kernel image is refused");
  expect(cuModuleLoadData(&module, kImage), CUDA_SUCCESS, "the test kernels load");
  CUfunction missing;
  expect(cuModuleGetFunction(&missing, module, "no_such_kernel"), CUDA_ERROR_NOT_FOUND, "an unknown kernel name");

  // Memory starts as NaN; kernels compute; copies round-trip.
  const long long n = 1000;
  CUdeviceptr a;
  cuMemAlloc(&a, n * sizeof(float));
  std::vector<float> v = read(a, n);
  check(bits(v[0]) == 0xFFFFFFFFu && bits(v[n - 1]) == 0xFFFFFFFFu, "new allocations read as NaN (0xFFFFFFFF)");
  long long count_arg = n;
  expect(launch("emu_write_index", 3, 128, CU_STREAM_LEGACY, {&a, &count_arg}), CUDA_SUCCESS, "launch");
  v = read(a, n);
  bool all = true;
  for (long long i = 0; i < n; i++) all &= v[i] == (float)i;
  check(all, "a grid-stride kernel writes every element");

  // Stream order: work on a non-blocking stream runs only when waited for.
  CUstream s;
  cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
  float seven = 7.f;
  launch("emu_fill", 2, 64, s, {&a, &seven, &count_arg});
  v = read(a, n);  // the legacy stream does not wait for a non-blocking stream
  check(v[0] == 0.f && v[999] == 999.f, "a missing synchronize reads stale memory");
  cuStreamSynchronize(s);
  v = read(a, n);
  check(v[0] == 7.f && v[999] == 7.f, "after cuStreamSynchronize the stream's work is visible");
  CUstream blocking;
  cuStreamCreate(&blocking, 0);
  float eight = 8.f;
  launch("emu_fill", 2, 64, blocking, {&a, &eight, &count_arg});
  v = read(a, n);  // a synchronous copy on the legacy stream waits for blocking streams
  check(v[0] == 8.f, "the legacy stream waits for blocking streams");
  float host[4] = {1, 2, 3, 4};
  cuMemcpyHtoDAsync(a, host, sizeof host, s);
  host[0] = 100;  // the driver staged the pageable source when the call returned
  cuStreamSynchronize(s);
  v = read(a, 4);
  check(v[0] == 1.f && v[3] == 4.f, "an async copy from pageable memory stages its source");

  // Barriers, shared memory, orders.
  CUdeviceptr r;
  cuMemAlloc(&r, 4 * 256 * sizeof(float));
  bool reversed = true;
  for (int launchNo = 0; launchNo < 6; launchNo++) {
    launch("emu_block_reverse", 4, 256, CU_STREAM_LEGACY, {&r});
    v = read(r, 4 * 256);
    for (int i = 0; i < 4 * 256; i++) reversed &= v[i] == (float)(255 - i % 256);
  }
  check(reversed, "__syncthreads is a barrier (6 launches, every order)");
  CUdeviceptr sh;
  cuMemAlloc(&sh, 64 * 4);
  launch("emu_shared_initial", 1, 64, CU_STREAM_LEGACY, {&sh});
  v = read(sh, 64);
  check(bits(v[0]) == 0xFFFFFFFFu && bits(v[63]) == 0xFFFFFFFFu, "__shared__ memory starts as NaN");
  CUdeviceptr counter, arrivals;
  cuMemAlloc(&counter, 4);
  cuMemAlloc(&arrivals, 256 * 4);
  std::set<std::vector<unsigned>> orders;
  bool permutations = true;
  for (int launchNo = 0; launchNo < 9; launchNo++) {
    cuMemsetD8(counter, 0, 4);
    launch("emu_arrival_order", 4, 64, CU_STREAM_LEGACY, {&counter, &arrivals});
    std::vector<unsigned> order(256);
    cuMemcpyDtoH(order.data(), arrivals, 256 * 4);
    permutations &= std::set<unsigned>(order.begin(), order.end()).size() == 256;
    orders.insert(order);
  }
  check(permutations && orders.size() >= 3, "block and thread orders vary between launches (atomicAdd takes the slots)");

  // Kernels without a race report none: barriers between the threads' accesses, blocks that read
  // the same input and write bytes of their own, atomics (above).
  int with_barrier = 1;
  CUdeviceptr cells;
  cuMemAlloc(&cells, 4 * 64 * sizeof(float));
  launch("emu_shared_neighbour", 4, 64, CU_STREAM_LEGACY, {&cells, &with_barrier});
  v = read(cells, 4 * 64);
  bool neighbours = true;
  for (int i = 0; i < 4 * 64; i++) neighbours &= v[i] == (float)((i + 1) % 64);
  expect(launch("emu_shared_shift", 4, 64, CU_STREAM_LEGACY, {&cells, &with_barrier}), CUDA_SUCCESS, "emu_shared_shift");
  v = read(cells, 4 * 64);
  for (int i = 0; i < 4 * 64; i++) neighbours &= v[i] == (float)((i + 1) % 64);
  launch("emu_shared_flag", 4, 64, CU_STREAM_LEGACY, {&cells, &with_barrier});
  std::vector<int> flags(4 * 64);
  cuMemcpyDtoH(flags.data(), cells, flags.size() * sizeof(int));
  for (int f : flags) neighbours &= f == 7;
  const int inputs = 64;
  std::vector<float> ones(inputs, 1.f);
  CUdeviceptr input, halves;
  cuMemAlloc(&input, inputs * sizeof(float));
  cuMemAlloc(&halves, 4 * sizeof(unsigned short));
  cuMemcpyHtoD(input, ones.data(), inputs * sizeof(float));
  launch("emu_global_shared_input", 4, 64, CU_STREAM_LEGACY, {&input, &halves, (void*)&inputs});
  unsigned short sums[4];
  check(cuMemcpyDtoH(sums, halves, sizeof sums) == CUDA_SUCCESS && neighbours && sums[0] == 64 && sums[3] == 64,
        "kernels without a race run (barriers, shared input, bytes of one word written by two blocks)");
  check(new_hazard_reports().empty(), "and report no race: the hazard log is empty");

  // Capture and graphs.
  expect(cuStreamBeginCapture(CU_STREAM_LEGACY, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
         "capture refused on the legacy stream");
  cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  float three = 3.f;
  launch("emu_fill", 2, 64, s, {&a, &three, &count_arg});
  CUdeviceptr during;
  expect(cuMemAlloc(&during, 64), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "allocation during capture refused");
  CUgraph graph = nullptr;
  expect(cuStreamEndCapture(s, &graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "and the capture is invalidated");
  check(graph == nullptr && read(a, 1)[0] == 1.f, "an invalidated capture runs nothing");
  cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  launch("emu_fill", 2, 64, s, {&a, &three, &count_arg});
  expect(cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "synchronizing a capturing stream is refused");
  cuStreamEndCapture(s, &graph);
  cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  launch("emu_fill", 2, 64, s, {&a, &three, &count_arg});
  expect(cuStreamEndCapture(s, &graph), CUDA_SUCCESS, "a clean capture ends with a graph");
  check(read(a, 1)[0] == 1.f, "captured work does not run at capture");
  CUgraphExec exec;
  expect(cuGraphInstantiateWithFlags(&exec, graph, 0), CUDA_SUCCESS, "instantiate");
  cuGraphDestroy(graph);
  expect(cuGraphLaunch(exec, CU_STREAM_LEGACY), CUDA_SUCCESS, "graph launch on CU_STREAM_LEGACY");
  cuGraphExecDestroy(exec);  // a launched graph still runs
  cuStreamSynchronize(CU_STREAM_LEGACY);
  v = read(a, n);
  check(v[0] == 3.f && v[999] == 3.f, "a replayed graph does the captured work");
  // An async copy from pageable memory is captured (as the driver does): the replay reads the host
  // memory as it is then.
  float source[4] = {1.f, 1.f, 1.f, 1.f};
  cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL);
  expect(cuMemcpyHtoDAsync(a, source, sizeof source, s), CUDA_SUCCESS, "a pageable async copy may be captured");
  expect(cuStreamEndCapture(s, &graph), CUDA_SUCCESS, "and the capture stays valid");
  check(read(a, 1)[0] == 3.f, "the captured copy does not run at capture");
  source[0] = 7.f;
  cuGraphInstantiateWithFlags(&exec, graph, 0);
  cuGraphDestroy(graph);
  cuGraphLaunch(exec, s);
  cuStreamSynchronize(s);
  cuGraphExecDestroy(exec);
  check(read(a, 1)[0] == 7.f, "its replay copies what the host memory holds at replay");

  // Host work: ordered on its stream like a kernel, captured like one, its operands checked.
  int runs = 0, released = 0;
  float five = 5.f;
  launch("emu_fill", 2, 64, s, {&a, &five, &count_arg});
  expect(enqueue_doubling(s, a, n * sizeof(float), &runs, &released), CUDA_SUCCESS, "host work is queued");
  check(runs == 0, "queued host work waits, like a kernel, until the host waits for it");
  cuStreamSynchronize(s);
  v = read(a, n);
  check(runs == 1 && released == 1 && v[0] == 10.f && v[999] == 10.f, "host work runs after the stream's earlier kernel, once");
  cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  enqueue_doubling(s, a, n * sizeof(float), &runs, &released);
  cuStreamEndCapture(s, &graph);
  check(runs == 1, "captured host work does not run at capture");
  cuGraphInstantiateWithFlags(&exec, graph, 0);
  cuGraphDestroy(graph);
  cuGraphLaunch(exec, s);
  cuGraphLaunch(exec, s);
  cuGraphExecDestroy(exec);
  cuStreamSynchronize(s);
  v = read(a, n);
  check(runs == 3 && released == 2 && v[0] == 40.f, "captured host work runs at each graph launch, released after the last");
  expect(enqueue_doubling(s, a + 4, n * sizeof(float), &runs, &released), CUDA_SUCCESS, "host work past its allocation is queued");
  CUresult sync = cuStreamSynchronize(s);
  CUdeviceptr after_fault;
  check(sync == CUDA_ERROR_ILLEGAL_ADDRESS && cuMemAlloc(&after_fault, 64) == CUDA_ERROR_ILLEGAL_ADDRESS && runs == 3,
        "and faults when it runs, as a kernel does: it does not run, the context is poisoned");
  fresh_context();
  cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
  cuMemAlloc(&a, n * sizeof(float));

  // Pointer attributes and other devices.
  cuDevicePrimaryCtxRetain(&ctx1, 1);
  cuCtxSetCurrent(ctx1);
  CUdeviceptr b;
  cuMemAlloc(&b, 256);
  cuCtxSetCurrent(ctx0);
  int ordinal = -1;
  unsigned type = 0;
  check(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, b + 8) == CUDA_SUCCESS && ordinal == 1,
        "a pointer's device ordinal");
  check(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, a) == CUDA_SUCCESS && type == CU_MEMORYTYPE_DEVICE,
        "a pointer's memory type");
  expect(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)(uintptr_t)host), CUDA_ERROR_INVALID_VALUE,
         "a host pointer is not device memory");
  CUdeviceptr base;
  size_t size;
  check(cuMemGetAddressRange(&base, &size, a + 100) == CUDA_SUCCESS && base == a && size == n * sizeof(float),
        "the address range of an interior pointer");
  expect(cuMemcpyDtoH(host, a + n * sizeof(float) - 4, 8), CUDA_ERROR_INVALID_VALUE, "a copy past an allocation is refused");

  // Faults: each poisons the context until its reset.
  long long one_more = 257;
  CUdeviceptr small;
  cuMemAlloc(&small, 256 * sizeof(float));
  expect_fault("a store one element past an allocation", CUDA_ERROR_ILLEGAL_ADDRESS, "emu_write_index", {&small, &one_more});
  CUdeviceptr aligned, result;
  cuMemAlloc(&aligned, 64);
  cuMemAlloc(&result, 64);
  CUdeviceptr off = aligned + 4;
  expect_fault("a misaligned 16-byte load", CUDA_ERROR_MISALIGNED_ADDRESS, "emu_load_float4", {&off, &result});
  CUdeviceptr freed;
  cuMemAlloc(&freed, 256 * sizeof(float));
  cuMemFree(freed);
  long long k = 256;
  expect_fault("a use after free", CUDA_ERROR_ILLEGAL_ADDRESS, "emu_write_index", {&freed, &k});
  CUdeviceptr host_pointer = (CUdeviceptr)(uintptr_t)malloc(4096);
  expect_fault("a host pointer in a kernel", CUDA_ERROR_ILLEGAL_ADDRESS, "emu_write_index", {&host_pointer, &k});
  long long few = 16;
  expect_fault("device 1 memory in a device 0 kernel", CUDA_ERROR_ILLEGAL_ADDRESS, "emu_write_index", {&b, &few});
  CUdeviceptr o;
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_fault("threads waiting at different barriers", CUDA_ERROR_LAUNCH_FAILED, "emu_divergent_barrier", {&o});
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_fault("a thread exiting while others wait at a barrier", CUDA_ERROR_LAUNCH_FAILED, "emu_exit_before_barrier", {&o});

  // Races: the stamps of device memory are exact, every kind fails its launch and is reported.
  bool agree = true;
  for (uint64_t seed = 1; seed <= 20 && agree; seed++) agree = granules_agree_with_bytes(seed, 2000);
  check(agree, "stamps per 32-byte granule find the races stamps per byte find, at the same byte (random accesses)");
  int no_barrier = 0;
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("a shared read of another thread's write, no barrier between", "emu_shared_neighbour", 1, {&o, &no_barrier},
              {"shared memory: ", " of emu_shared_neighbour::cells, byte ", "since the block began, with no barrier between"});
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("a shared write after another thread's read, no barrier between", "emu_shared_shift", 1, {&o, &no_barrier},
              {"shared memory: ", " of emu_shared_shift::cells, byte ", "since the last barrier (", "selftest_kernels.cu:"});
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("a __shared__ scalar read while another thread writes it", "emu_shared_flag", 1, {&o, &no_barrier},
              {"shared memory: ", " of emu_shared_flag::flag, byte 0 ", "thread (0,0,0)"});
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("two threads write one __shared__ word", "emu_shared_same_word", 1, {&o},
              {"shared memory: write of emu_shared_same_word::word, byte 0 ", "wrote since the block began"});
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("two blocks write one global word", "emu_global_same_word", 2, {&o},
              {"global memory: write of byte 0 of allocation #", "which block (", "wrote earlier in this launch"});
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("a block reads what another block writes", "emu_global_handoff", 2, {&o},
              {"global memory: ", "byte 0 of allocation #", "earlier in this launch"});
  CUdeviceptr atomic_counter;
  cuMemAlloc(&atomic_counter, 4);
  cuMemAlloc(&o, 1024 * sizeof(float));
  expect_race("a plain read of a word another block updates atomically", "emu_global_atomic_then_read", 2, {&atomic_counter, &o},
              {"global memory: ", "byte 0 of allocation #"});
  check(run_child("report") == 0 && occurrences(new_hazard_reports(), "data race in kernel emu_global_same_word") == 1,
        "FO_EMU_HAZARDS=report: the launch succeeds, its first race is reported");
  check(run_child("off") == 0 && new_hazard_reports().empty(), "FO_EMU_HAZARDS=off: the launch succeeds, nothing is checked");

  // Primary context counting: the last release resets the context and frees its memory.
  size_t free0, total0, free1, total1;
  cuDevicePrimaryCtxRetain(&ctx0, 0);  // two retains now
  CUdeviceptr kept;
  cuMemAlloc(&kept, 4096);
  cuMemGetInfo(&free0, &total0);
  check(total0 - free0 >= 4096, "cuMemGetInfo counts allocations");
  cuDevicePrimaryCtxRelease(0);
  check(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, kept) == CUDA_SUCCESS,
        "memory survives a release that is not the last");
  cuDevicePrimaryCtxRelease(0);
  expect(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, kept), CUDA_ERROR_INVALID_VALUE,
         "the last release frees the context's memory");
  expect(cuMemAlloc(&kept, 64), CUDA_ERROR_CONTEXT_IS_DESTROYED, "a reset context refuses work until retained");
  expect(cuDevicePrimaryCtxRelease(0), CUDA_ERROR_INVALID_CONTEXT, "releasing an inactive context");
  cuDevicePrimaryCtxRetain(&ctx0, 0);
  cuMemGetInfo(&free1, &total1);
  check(free1 == total1, "a retained-again context starts empty");
  expect(cuModuleGetFunction(&missing, module, "emu_fill"), CUDA_ERROR_INVALID_HANDLE, "modules of a reset context are gone");

  unlink(hazard_log.c_str());
  printf("selftest: %d checks passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
