// The emulator's own tests, through the driver API as any client would call it: what it must
// compute, the orders it must vary, and every rule it must enforce. Prints one line per check and
// a summary; exits 1 if any check failed. Run by io.fusedopt.CudaEmulatorSelfTest.
#include <cuda.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <set>
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
static void expect_fault(const char* what, CUresult code, const char* kernel, std::initializer_list<void*> args, unsigned block = 64) {
  CUresult queued = launch(kernel, 1, block, CU_STREAM_LEGACY, args);
  CUresult sync = cuCtxSynchronize();
  CUdeviceptr p;
  CUresult after = cuMemAlloc(&p, 64);
  char text[256];
  snprintf(text, sizeof text, "%s: queued, then %d at synchronize and at the next call", what, (int)code);
  check(queued == CUDA_SUCCESS && sync == code && after == code, text);
  fresh_context();
}

int main() {
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
  std::set<float> survivors;
  for (int launchNo = 0; launchNo < 9; launchNo++) {
    launch("emu_last_writer", 4, 64, CU_STREAM_LEGACY, {&sh});
    survivors.insert(read(sh, 1)[0]);
  }
  check(survivors.size() >= 3, "block and thread orders vary between launches");

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

  printf("selftest: %d checks passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
