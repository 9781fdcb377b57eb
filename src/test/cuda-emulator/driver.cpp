// The CUDA driver API entry points that fusedopt reaches, declared by the toolkit's own cuda.h
// (so the ABI, including the _v2 names, is the real one), over an emulated machine of two devices.
//
// Stream order: every asynchronous call becomes an operation queued on its stream, with the
// dependencies the documentation gives (stream order; the legacy default stream waits for, and is
// waited for by, every blocking stream of its context). One device worker thread executes them,
// and only when a host call waits for them (a synchronize, a blocking copy): a missing
// synchronize reads stale memory every time instead of passing by luck. Among operations that are
// ready at once, the worker picks in a seeded random order.
#include "emulator.h"
#include "host_work.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>


namespace fo_emu {
namespace {

constexpr int kMultiprocessors = 2;
constexpr int kDriverVersion = 13000;  // what the kernel binaries of a CUDA 13 toolkit need

struct Context;
struct Stream;

struct Rendezvous;

struct Op {
  Context* ctx;
  std::vector<std::shared_ptr<Op>> deps;
  std::function<CUresult()> work;
  bool demanded = false;
  bool done = false;
  std::shared_ptr<Rendezvous> rendezvous;  // a collective's participant (fo_emu_enqueue_collective)
};

// A collective (host_work.h, fo_emu_enqueue_collective): one op per participant, each on its own
// stream. It is ready when every participant has queued its op and each op's own dependencies are
// done; then its work runs once, for all of them, and they are all done together.
struct Rendezvous {
  size_t expected = 0;
  std::vector<std::shared_ptr<Op>> ops;          // by participant index; null until it arrives
  size_t arrived = 0;
  std::vector<std::shared_ptr<void>> payloads;   // by participant index
  std::vector<std::function<CUresult()>> checks;  // each participant's operands, on its device
  CUresult (*run)(void* const* payloads, int participants) = nullptr;
  bool aborted = false;                          // fo_emu_abort_collective: runs now, with whoever arrived, and fails

  // The collective's work: every participant's operands checked, then run over every payload, in
  // the arithmetic environment of a kernel launch (execution.cpp).
  CUresult work() const {
    if (aborted) {
      fprintf(stderr, "fusedopt CUDA emulator: a collective was aborted with %zu of its %zu participants\n", arrived, expected);
      return CUDA_ERROR_LAUNCH_FAILED;
    }
    for (const auto& check : checks) {
      if (CUresult fault = check(); fault != CUDA_SUCCESS) return fault;
    }
    std::vector<void*> raw;
    for (const auto& p : payloads) raw.push_back(p.get());
    const KernelFloatEnvironment environment;
    return run(raw.data(), (int)raw.size());
  }
};

// A collective's part recorded into a capture (fo_emu_enqueue_collective on a capturing stream):
// each launch of the graph joins the collective anew, under the key its library gives for this
// participant's next collective.
struct CapturedCollective {
  std::string call;
  int participants;
  int index;
  std::function<CUresult()> check;  // the operands, on this participant's device
  CUresult (*run)(void* const* payloads, int participants);
  std::shared_ptr<void> payload;
  const void* (*next_key)(void* payload);
};

// What a capture records, and a graph replays: the work of each captured call, in order, or a
// collective's part.
struct Node {
  std::function<CUresult()> work;
  std::shared_ptr<CapturedCollective> collective;
};
using Nodes = std::vector<Node>;

struct Stream {
  Context* ctx = nullptr;
  bool blocking = true;        // synchronizes with the legacy default stream
  bool legacy = false;  // the legacy default stream itself
  std::shared_ptr<Op> last;
  // Stream capture
  bool capturing = false;
  bool invalidated = false;
  CUstreamCaptureMode mode = CU_STREAM_CAPTURE_MODE_GLOBAL;
  std::thread::id capture_thread;
  std::shared_ptr<Nodes> captured;
};

struct Module {
  Context* ctx;
  const Family* family;
};

struct Function {
  Module* module;
  const Kernel* kernel;
};

struct Graph {
  std::shared_ptr<Nodes> nodes;
};

struct GraphExec {
  Context* ctx;
  std::shared_ptr<Nodes> nodes;
};

// The primary context of a device: the only kind fusedopt uses.
struct Context {
  int device;
  int retains = 0;
  CUresult sticky = CUDA_SUCCESS;  // a kernel fault poisons the context until it is reset
  Stream* legacy_stream = nullptr;
  Stream* per_thread_stream = nullptr;
  std::set<Stream*> streams;       // every stream of the context, the default ones included
  std::set<Module*> modules;
  std::set<GraphExec*> execs;
};

struct State {
  std::mutex lock;
  std::condition_variable changed;
  bool initialized = false;
  Context contexts[kDeviceCount];
  std::deque<std::shared_ptr<Op>> pending;
  std::unordered_set<void*> handles;  // every live stream, module, function, graph and exec
  std::mt19937_64 pick{order_seed()};
  uint64_t launches = 0;
};

State& S = *new State();  // never destroyed: the worker may still wait when the process exits
thread_local Context* current = nullptr;

// ---- The device worker ----

bool deps_done(const Op& op) {
  for (const auto& d : op.deps) {
    if (!d->done) return false;
  }
  return true;
}

bool ready(const Op& op) {
  if (!op.demanded || op.done || !deps_done(op)) return false;
  if (const auto& r = op.rendezvous) {
    if (r->arrived < r->expected && !r->aborted) return false;
    for (const auto& o : r->ops) {
      if (o && !deps_done(*o)) return false;
    }
  }
  return true;
}

// An op that ran with result (or was skipped in a faulted context; caller holds the lock): a fault
// poisons its context, and what waits for it may run.
void finish(Op& op, CUresult result) {
  if (result != CUDA_SUCCESS && op.ctx->sticky == CUDA_SUCCESS) op.ctx->sticky = result;
  op.done = true;
  op.deps.clear();
  op.work = nullptr;
}

[[noreturn]] void worker() {
  std::unique_lock<std::mutex> lk(S.lock);
  for (;;) {
    std::vector<size_t> candidates;
    S.changed.wait(lk, [&] {
      candidates.clear();
      for (size_t i = 0; i < S.pending.size(); i++) {
        if (ready(*S.pending[i])) candidates.push_back(i);
      }
      return !candidates.empty();
    });
    const size_t index = candidates[S.pick() % candidates.size()];
    std::shared_ptr<Op> op = S.pending[index];
    if (std::shared_ptr<Rendezvous> r = op->rendezvous) {  // every participant at once
      bool poisoned = false;
      for (const auto& o : r->ops) {
        if (!o) continue;  // an aborted collective's missing participant
        S.pending.erase(std::find(S.pending.begin(), S.pending.end(), o));
        poisoned |= o->ctx->sticky != CUDA_SUCCESS;
      }
      lk.unlock();
      CUresult result = poisoned ? CUDA_SUCCESS : r->work();  // r is kept alive by op
      lk.lock();
      for (const auto& o : r->ops) {
        if (!o) continue;
        finish(*o, result);
        o->rendezvous = nullptr;
      }
      r->payloads.clear();  // released on the worker: release must not call the driver
      r->checks.clear();
      S.changed.notify_all();
      continue;
    }
    S.pending.erase(S.pending.begin() + (ptrdiff_t)index);
    Context* ctx = op->ctx;
    const bool poisoned = ctx->sticky != CUDA_SUCCESS;  // a faulted context runs nothing more
    lk.unlock();
    CUresult result = poisoned ? CUDA_SUCCESS : op->work();
    lk.lock();
    finish(*op, result);
    S.changed.notify_all();
  }
}

// Marks op and everything it waits for as wanted by the host (caller holds the lock).
void demand(const std::shared_ptr<Op>& op) {
  std::vector<Op*> todo{op.get()};
  while (!todo.empty()) {
    Op* o = todo.back();
    todo.pop_back();
    if (o->demanded || o->done) continue;
    o->demanded = true;
    for (const auto& d : o->deps) todo.push_back(d.get());
    if (o->rendezvous) {  // a collective runs when all its participants can: the host waits for them all
      for (const auto& sibling : o->rendezvous->ops) {
        if (sibling) todo.push_back(sibling.get());
      }
    }
  }
}

void wait_for(std::unique_lock<std::mutex>& lk, const std::shared_ptr<Op>& op) {
  if (!op) return;
  demand(op);
  S.changed.notify_all();
  S.changed.wait(lk, [&] { return op->done; });
}

void wait_idle(std::unique_lock<std::mutex>& lk, Context* ctx) {
  for (const auto& op : S.pending) {
    if (op->ctx == ctx) demand(op);
  }
  S.changed.notify_all();
  S.changed.wait(lk, [&] {
    return std::none_of(S.pending.begin(), S.pending.end(), [&](const auto& op) { return op->ctx == ctx; });
  });
}

// ---- Handles and contexts ----

Stream* new_stream(Context* ctx, bool blocking) {
  auto* s = new Stream();
  s->ctx = ctx;
  s->blocking = blocking;
  ctx->streams.insert(s);
  S.handles.insert(s);
  return s;
}

void destroy_stream(Stream* s) {
  s->ctx->streams.erase(s);
  S.handles.erase(s);
  delete s;
}

void destroy_module(Module* m) {
  m->ctx->modules.erase(m);
  S.handles.erase(m);
  delete m;
}

// The calling thread's context, checked: 0 when it can be used.
CUresult usable(Context** out) {
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  Context* ctx = current;
  if (!ctx) return CUDA_ERROR_INVALID_CONTEXT;
  if (ctx->retains == 0) return CUDA_ERROR_CONTEXT_IS_DESTROYED;  // its primary context was reset
  if (ctx->sticky != CUDA_SUCCESS) return ctx->sticky;
  *out = ctx;
  return CUDA_SUCCESS;
}

// The stream a handle names in ctx: 0 and CU_STREAM_LEGACY are the legacy default stream.
CUresult resolve(Context* ctx, CUstream handle, Stream** out) {
  if (handle == nullptr || handle == CU_STREAM_LEGACY) {
    *out = ctx->legacy_stream;
  } else if (handle == CU_STREAM_PER_THREAD) {
    *out = ctx->per_thread_stream;
  } else {
    if (!S.handles.count(handle)) return CUDA_ERROR_INVALID_HANDLE;
    auto* s = reinterpret_cast<Stream*>(handle);
    if (s->ctx != ctx) return CUDA_ERROR_INVALID_CONTEXT;
    *out = s;
  }
  return CUDA_SUCCESS;
}

void invalidate(Stream* s) {
  if (s->capturing) s->invalidated = true;
}

// A call that the documentation forbids while a stream captures (synchronous copies,
// synchronization, allocation): it invalidates the captures it could disturb and fails.
CUresult refuse_if_capturing(Context* ctx) {
  bool refused = false;
  for (Stream* s : ctx->streams) {
    if (!s->capturing) continue;
    if (s->mode == CU_STREAM_CAPTURE_MODE_RELAXED) continue;
    if (s->mode == CU_STREAM_CAPTURE_MODE_THREAD_LOCAL && s->capture_thread != std::this_thread::get_id()) continue;
    invalidate(s);
    refused = true;
  }
  return refused ? CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED : CUDA_SUCCESS;
}

// Queues work on s (or records it into s's capture). Returns the queued op, or null when captured.
CUresult enqueue(Stream* s, std::function<CUresult()> work, std::shared_ptr<Op>* queued = nullptr) {
  Context* ctx = s->ctx;
  if (s->capturing) {
    if (s->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    s->captured->push_back(Node{std::move(work), nullptr});
    return CUDA_SUCCESS;
  }
  auto op = std::make_shared<Op>();
  op->ctx = ctx;
  op->work = std::move(work);
  if (s->last && !s->last->done) op->deps.push_back(s->last);
  if (s->legacy) {
    for (Stream* other : ctx->streams) {
      if (other == s || !other->blocking) continue;
      if (other->capturing) {  // the legacy stream would join a capture: forbidden
        invalidate(other);
        return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
      }
      if (other->last && !other->last->done) op->deps.push_back(other->last);
    }
  } else if (s->blocking) {
    Stream* l = ctx->legacy_stream;
    if (l->last && !l->last->done) op->deps.push_back(l->last);
  }
  s->last = op;
  S.pending.push_back(op);
  if (queued) *queued = op;
  return CUDA_SUCCESS;
}

// Validates [address, address+bytes) as live device memory (of any device: unified addressing).
bool device_range(CUdeviceptr address, size_t bytes) {
  Allocation a;
  return bytes == 0 ? find_any(address, &a) && a.live : find_live(address, bytes, &a);
}

// Work that copies or sets device memory checks again when it runs: memory freed by a context
// that does not wait for this one faults as a kernel access would.
CUresult still_live(CUdeviceptr address, size_t bytes, const char* call) {
  if (bytes == 0 || device_range(address, bytes)) return CUDA_SUCCESS;
  fprintf(stderr, "fusedopt CUDA emulator: illegal address in %s: %zu bytes at 0x%llx are not live device memory when it runs\n",
          call, bytes, (unsigned long long)address);
  return CUDA_ERROR_ILLEGAL_ADDRESS;
}

// A device operand of host work (host_work.h), checked each time the work runs.
struct CheckedOperand {
  CUdeviceptr address;
  size_t bytes;
  const char* access;
  std::string name;
};

std::vector<CheckedOperand> checked_operands(const fo_emu_operand* operands, size_t count) {
  std::vector<CheckedOperand> checked;
  for (size_t i = 0; i < count; i++) {
    const fo_emu_operand& o = operands[i];
    checked.push_back(CheckedOperand{o.address, o.bytes, o.written ? "write" : "read", o.name ? o.name : "?"});
  }
  return checked;
}

// CUDA_ERROR_ILLEGAL_ADDRESS, with a report on stderr, when an operand is not live memory of `device`.
CUresult operand_fault(const std::string& call, const std::vector<CheckedOperand>& operands, int device) {
  for (const CheckedOperand& o : operands) {
    if (o.bytes == 0) continue;
    Allocation a;
    FaultKind kind;
    const std::string problem = access_problem(o.address, o.bytes, o.access, device, &kind, &a);
    if (!problem.empty()) {
      fprintf(stderr, "fusedopt CUDA emulator: illegal address in %s, operand %s: %s\n", call.c_str(), o.name.c_str(),
              problem.c_str());
      return CUDA_ERROR_ILLEGAL_ADDRESS;
    }
  }
  return CUDA_SUCCESS;
}

// The collectives whose participants have not all arrived, by key (fo_emu_enqueue_collective).
std::map<const void*, std::shared_ptr<Rendezvous>>& open_collectives = *new std::map<const void*, std::shared_ptr<Rendezvous>>();

// Queues participant `index`'s part of the collective `key` on s (fo_emu_enqueue_collective; each
// launch of a graph that captured one). The caller holds the lock.
CUresult join_collective(std::unique_lock<std::mutex>&, Stream* s, const void* key, int participants, int index,
                         std::function<CUresult()> check, CUresult (*run)(void* const*, int), std::shared_ptr<void> payload) {
  std::shared_ptr<Rendezvous>& slot = open_collectives[key];
  if (!slot) {
    slot = std::make_shared<Rendezvous>();
    slot->expected = (size_t)participants;
    slot->ops.resize((size_t)participants);
    slot->payloads.resize((size_t)participants);
    slot->run = run;
  }
  std::shared_ptr<Rendezvous> r = slot;
  if (r->expected != (size_t)participants || r->ops[(size_t)index] || r->run != run) return CUDA_ERROR_INVALID_VALUE;
  std::shared_ptr<Op> op;
  if (CUresult e = enqueue(s, [] { return CUDA_SUCCESS; }, &op); e != CUDA_SUCCESS) return e;
  op->rendezvous = r;
  r->ops[(size_t)index] = op;
  r->payloads[(size_t)index] = std::move(payload);
  r->checks.push_back(std::move(check));
  if (++r->arrived == r->expected) open_collectives.erase(key);
  // A participant the host already waits for makes the newcomer wanted too.
  for (const auto& sibling : r->ops) {
    if (sibling && sibling != op && sibling->demanded) {
      demand(op);
      S.changed.notify_all();
      break;
    }
  }
  return CUDA_SUCCESS;
}

// A host wait for (or a query of) stream s is illegal while s captures, or, for the legacy stream,
// while a blocking stream of its context captures: the capture is invalidated and the error returned.
CUresult refuse_wait_during_capture(Context* ctx, Stream* s) {
  if (s->capturing) {
    invalidate(s);
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  if (s->legacy) {
    for (Stream* other : ctx->streams) {
      if (other->blocking && other->capturing) {
        invalidate(other);
        return CUDA_ERROR_STREAM_CAPTURE_IMPLICIT;
      }
    }
  }
  return CUDA_SUCCESS;
}

// Queues, then waits when the host call is synchronous; returns the context's error, if any.
CUresult submit(std::unique_lock<std::mutex>& lk, Stream* s, std::function<CUresult()> work, bool wait) {
  std::shared_ptr<Op> op;
  CUresult r = enqueue(s, std::move(work), &op);
  if (r != CUDA_SUCCESS || !wait) return r;
  wait_for(lk, op);
  return s->ctx->sticky;
}

void reset(std::unique_lock<std::mutex>& lk, Context* ctx) {
  wait_idle(lk, ctx);
  free_all(ctx->device);
  for (Module* m : std::vector<Module*>(ctx->modules.begin(), ctx->modules.end())) destroy_module(m);
  for (GraphExec* e : std::vector<GraphExec*>(ctx->execs.begin(), ctx->execs.end())) {
    S.handles.erase(e);
    delete e;
  }
  ctx->execs.clear();
  for (Stream* s : std::vector<Stream*>(ctx->streams.begin(), ctx->streams.end())) destroy_stream(s);
  ctx->legacy_stream = ctx->per_thread_stream = nullptr;
  ctx->sticky = CUDA_SUCCESS;
}

const char* error_name(CUresult r, bool description) {
  switch (r) {
#define FO_EMU_ERROR(code, text) \
  case code: return description ? text : #code;
    FO_EMU_ERROR(CUDA_SUCCESS, "no error")
    FO_EMU_ERROR(CUDA_ERROR_INVALID_VALUE, "invalid argument")
    FO_EMU_ERROR(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")
    FO_EMU_ERROR(CUDA_ERROR_NOT_INITIALIZED, "initialization error")
    FO_EMU_ERROR(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected")
    FO_EMU_ERROR(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal")
    FO_EMU_ERROR(CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid")
    FO_EMU_ERROR(CUDA_ERROR_INVALID_CONTEXT, "invalid device context")
    FO_EMU_ERROR(CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device")
    FO_EMU_ERROR(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle")
    FO_EMU_ERROR(CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state")
    FO_EMU_ERROR(CUDA_ERROR_NOT_FOUND, "named symbol not found")
    FO_EMU_ERROR(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered")
    FO_EMU_ERROR(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch")
    FO_EMU_ERROR(CUDA_ERROR_CONTEXT_IS_DESTROYED, "context is destroyed")
    FO_EMU_ERROR(CUDA_ERROR_MISALIGNED_ADDRESS, "misaligned address")
    FO_EMU_ERROR(CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure")
    FO_EMU_ERROR(CUDA_ERROR_NOT_SUPPORTED, "operation not supported")
    FO_EMU_ERROR(CUDA_ERROR_NOT_READY, "device not ready")
    FO_EMU_ERROR(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "operation not permitted when stream is capturing")
    FO_EMU_ERROR(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "operation failed due to a previous error during capture")
    FO_EMU_ERROR(CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "operation would make the legacy stream depend on a capturing blocking stream")
    FO_EMU_ERROR(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD, "attempt to terminate a thread-local capture sequence from another thread")
#undef FO_EMU_ERROR
    default: return nullptr;
  }
}

}  // namespace
}  // namespace fo_emu

using namespace fo_emu;

// Every entry point takes the state lock for its whole duration (waits release it).
#define FO_EMU_LOCK std::unique_lock<std::mutex> lk(S.lock)
#define FO_EMU_CONTEXT                        \
  Context* ctx = nullptr;                     \
  if (CUresult r_ = usable(&ctx); r_ != 0) return r_

extern "C" {

CUresult cuInit(unsigned int flags) {
  FO_EMU_LOCK;
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (!S.initialized) {
    for (int d = 0; d < kDeviceCount; d++) S.contexts[d].device = d;
    std::thread(worker).detach();
    S.initialized = true;
  }
  return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int* version) {
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  *version = kDriverVersion;
  return CUDA_SUCCESS;
}

CUresult cuGetErrorString(CUresult error, const char** text) {
  if (!text) return CUDA_ERROR_INVALID_VALUE;
  *text = error_name(error, true);
  return *text ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorName(CUresult error, const char** text) {
  if (!text) return CUDA_ERROR_INVALID_VALUE;
  *text = error_name(error, false);
  return *text ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDeviceGetCount(int* count) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  *count = kDeviceCount;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (ordinal < 0 || ordinal >= kDeviceCount) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char* name, int length, CUdevice device) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= kDeviceCount) return CUDA_ERROR_INVALID_DEVICE;
  if (!name || length <= 0) return CUDA_ERROR_INVALID_VALUE;
  snprintf(name, (size_t)length, "fusedopt CUDA emulator (device %d)", device);
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int* value, CUdevice_attribute attribute, CUdevice device) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= kDeviceCount) return CUDA_ERROR_INVALID_DEVICE;
  if (!value) return CUDA_ERROR_INVALID_VALUE;
  switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *value = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *value = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *value = kMultiprocessors; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *value = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: *value = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: *value = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: *value = 64; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *value = 0x7FFFFFFF; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: *value = 65535; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: *value = 65535; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *value = 32; break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *value = 1; break;
    case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *value = device; break;
    default:
      fprintf(stderr, "fusedopt CUDA emulator: cuDeviceGetAttribute(%d) is not emulated\n", (int)attribute);
      return CUDA_ERROR_NOT_SUPPORTED;
  }
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext* out, CUdevice device) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= kDeviceCount) return CUDA_ERROR_INVALID_DEVICE;
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  Context* ctx = &S.contexts[device];
  if (ctx->retains++ == 0) {  // (re)created: fresh default streams, nothing allocated
    ctx->legacy_stream = new_stream(ctx, true);
    ctx->legacy_stream->legacy = true;
    ctx->per_thread_stream = new_stream(ctx, true);
  }
  *out = reinterpret_cast<CUcontext>(ctx);
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice device) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (device < 0 || device >= kDeviceCount) return CUDA_ERROR_INVALID_DEVICE;
  Context* ctx = &S.contexts[device];
  if (ctx->retains == 0) return CUDA_ERROR_INVALID_CONTEXT;
  if (ctx->retains == 1) reset(lk, ctx);  // the last release resets it and frees its memory
  ctx->retains--;
  return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext handle) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (handle == nullptr) {
    current = nullptr;
    return CUDA_SUCCESS;
  }
  auto* ctx = reinterpret_cast<Context*>(handle);
  if (ctx < &S.contexts[0] || ctx >= &S.contexts[kDeviceCount]) return CUDA_ERROR_INVALID_CONTEXT;
  current = ctx;
  return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext* out) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  *out = reinterpret_cast<CUcontext>(current);
  return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice* device) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  *device = ctx->device;
  return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize() {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  wait_idle(lk, ctx);
  return ctx->sticky;
}

CUresult cuMemAlloc(CUdeviceptr* out, size_t bytes) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  uintptr_t address = device_alloc(ctx->device, bytes);
  if (!address) return CUDA_ERROR_OUT_OF_MEMORY;
  *out = address;
  return CUDA_SUCCESS;
}

CUresult cuMemFree(CUdeviceptr address) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  Allocation a;
  if (!find_any(address, &a) || a.base != address || !a.live) return CUDA_ERROR_INVALID_VALUE;
  wait_idle(lk, ctx);  // freeing waits for the device, as the driver does
  if (ctx->sticky) return ctx->sticky;
  device_free(address);
  return CUDA_SUCCESS;
}

CUresult cuMemGetInfo(size_t* free, size_t* total) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!free || !total) return CUDA_ERROR_INVALID_VALUE;
  *total = device_capacity();
  *free = device_capacity() - device_used(ctx->device);
  return CUDA_SUCCESS;
}

CUresult cuMemGetAddressRange(CUdeviceptr* base, size_t* size, CUdeviceptr address) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  Allocation a;
  if (!find_live(address, 0, &a)) return CUDA_ERROR_NOT_FOUND;
  if (base) *base = a.base;
  if (size) *size = a.size;
  return CUDA_SUCCESS;
}

CUresult cuPointerGetAttribute(void* data, CUpointer_attribute attribute, CUdeviceptr address) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!data) return CUDA_ERROR_INVALID_VALUE;
  Allocation a;
  if (!find_live(address, 0, &a)) return CUDA_ERROR_INVALID_VALUE;  // host or freed memory
  switch (attribute) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: *static_cast<CUcontext*>(data) = reinterpret_cast<CUcontext>(&S.contexts[a.device]); break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: *static_cast<unsigned*>(data) = CU_MEMORYTYPE_DEVICE; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: *static_cast<CUdeviceptr*>(data) = address; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: *static_cast<int*>(data) = a.device; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: *static_cast<unsigned long long*>(data) = a.id; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: *static_cast<int*>(data) = 0; break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: *static_cast<CUdeviceptr*>(data) = a.base; break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: *static_cast<size_t*>(data) = a.size; break;
    case CU_POINTER_ATTRIBUTE_MAPPED: *static_cast<int*>(data) = 1; break;
    default:
      fprintf(stderr, "fusedopt CUDA emulator: cuPointerGetAttribute(%d) is not emulated\n", (int)attribute);
      return CUDA_ERROR_NOT_SUPPORTED;
  }
  return CUDA_SUCCESS;
}

// ---- Copies and sets ----

static CUresult copy_to_device(CUdeviceptr dst, const void* src, size_t bytes, CUstream handle, bool wait) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (wait) {
    if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  }
  if (!src || !device_range(dst, bytes)) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  if (s->capturing) {
    // The driver records an async copy from pageable memory into the capture, in every capture
    // mode (the H200 run of 2026-12-04, DriverQuestions): the graph's node reads the host address
    // at each replay, not what it held at capture, so that memory must outlive the graph.
    return submit(lk, s, [dst, src, bytes]() {
      if (CUresult r = still_live(dst, bytes, "cuMemcpyHtoD"); r != 0) return r;
      memcpy((void*)dst, src, bytes);
      return CUDA_SUCCESS;
    }, false);
  }
  // From pageable memory the driver stages the source before the call returns.
  auto staged = std::make_shared<std::vector<unsigned char>>((const unsigned char*)src, (const unsigned char*)src + bytes);
  return submit(lk, s, [dst, staged, bytes]() {
    if (CUresult r = still_live(dst, bytes, "cuMemcpyHtoD"); r != 0) return r;
    memcpy((void*)dst, staged->data(), bytes);
    return CUDA_SUCCESS;
  }, wait);
}

// To pageable memory the call returns when the data has arrived, whichever the call.
static CUresult copy_to_host(void* dst, CUdeviceptr src, size_t bytes, CUstream handle, bool sync_call) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (sync_call) {
    if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  }
  if (!dst || !device_range(src, bytes)) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  if (s->capturing) {
    invalidate(s);
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  }
  return submit(lk, s, [dst, src, bytes]() {
    if (CUresult r = still_live(src, bytes, "cuMemcpyDtoH"); r != 0) return r;
    memcpy(dst, (const void*)src, bytes);
    return CUDA_SUCCESS;
  }, true);
}

CUresult cuMemcpyHtoD(CUdeviceptr dst, const void* src, size_t bytes) {
  return copy_to_device(dst, src, bytes, CU_STREAM_LEGACY, true);
}
CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void* src, size_t bytes, CUstream stream) {
  return copy_to_device(dst, src, bytes, stream, false);
}
CUresult cuMemcpyDtoH(void* dst, CUdeviceptr src, size_t bytes) {
  return copy_to_host(dst, src, bytes, CU_STREAM_LEGACY, true);
}
CUresult cuMemcpyDtoHAsync(void* dst, CUdeviceptr src, size_t bytes, CUstream stream) {
  return copy_to_host(dst, src, bytes, stream, false);
}

CUresult cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream handle) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!device_range(dst, bytes) || !device_range(src, bytes)) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  return submit(lk, s, [dst, src, bytes]() {
    if (CUresult r = still_live(src, bytes, "cuMemcpyDtoD"); r != 0) return r;
    if (CUresult r = still_live(dst, bytes, "cuMemcpyDtoD"); r != 0) return r;
    memmove((void*)dst, (const void*)src, bytes);
    return CUDA_SUCCESS;
  }, false);
}

}  // extern "C"

template <typename T>
static CUresult set_memory(CUdeviceptr dst, T value, size_t count, CUstream handle, bool wait) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (wait) {
    if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  }
  if (dst % sizeof(T) != 0 || !device_range(dst, count * sizeof(T))) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  return submit(lk, s, [dst, value, count]() {
    if (CUresult r = still_live(dst, count * sizeof(T), "cuMemset"); r != 0) return r;
    T* p = reinterpret_cast<T*>(dst);
    for (size_t i = 0; i < count; i++) p[i] = value;
    return CUDA_SUCCESS;
  }, wait);
}

extern "C" {

CUresult cuMemsetD8(CUdeviceptr dst, unsigned char value, size_t count) {
  return set_memory<unsigned char>(dst, value, count, CU_STREAM_LEGACY, true);
}
CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value, size_t count, CUstream stream) {
  return set_memory<unsigned short>(dst, value, count, stream, false);
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int value, size_t count, CUstream stream) {
  return set_memory<unsigned int>(dst, value, count, stream, false);
}

// ---- Modules and launches ----

CUresult cuModuleLoadData(CUmodule* out, const void* image) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out || !image) return CUDA_ERROR_INVALID_VALUE;
  if (CUresult r = refuse_if_capturing(ctx); r != 0) return r;
  const Family* family = family_for_image(image);
  if (!family) {
    fprintf(stderr, "fusedopt CUDA emulator: cuModuleLoadData: the image is none of the kernel binaries this emulator was built with\n");
    return CUDA_ERROR_NO_BINARY_FOR_GPU;
  }
  auto* m = new Module{ctx, family};
  ctx->modules.insert(m);
  S.handles.insert(m);
  *out = reinterpret_cast<CUmodule>(m);
  return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule handle) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!S.handles.count(handle)) return CUDA_ERROR_INVALID_HANDLE;
  auto* m = reinterpret_cast<Module*>(handle);
  if (m->ctx != ctx) return CUDA_ERROR_INVALID_CONTEXT;
  wait_idle(lk, ctx);
  destroy_module(m);
  return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction* out, CUmodule handle, const char* name) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out || !name) return CUDA_ERROR_INVALID_VALUE;
  if (!S.handles.count(handle)) return CUDA_ERROR_INVALID_HANDLE;
  auto* m = reinterpret_cast<Module*>(handle);
  for (const Kernel& k : m->family->kernels) {
    if (strcmp(k.name, name) == 0) {
      // One Function per lookup, owned by its module's lifetime in spirit; kept for the process.
      auto* f = new Function{m, &k};
      S.handles.insert(f);
      *out = reinterpret_cast<CUfunction>(f);
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}

CUresult cuLaunchKernel(CUfunction handle, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared_bytes, CUstream stream, void** params, void** extra) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!S.handles.count(handle)) return CUDA_ERROR_INVALID_HANDLE;
  auto* f = reinterpret_cast<Function*>(handle);
  if (!S.handles.count(f->module)) return CUDA_ERROR_INVALID_HANDLE;  // its module was unloaded
  if (f->module->ctx != ctx) return CUDA_ERROR_INVALID_CONTEXT;
  if (extra) return CUDA_ERROR_NOT_SUPPORTED;
  if (shared_bytes != 0) return CUDA_ERROR_INVALID_VALUE;  // no kernel here uses dynamic shared memory
  if (gx == 0 || gy == 0 || gz == 0 || bx == 0 || by == 0 || bz == 0 || gy > 65535 || gz > 65535 || bx > 1024 ||
      by > 1024 || bz > 64 || (unsigned long long)bx * by * bz > 1024) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  const Kernel& k = *f->kernel;
  if (!k.param_sizes.empty() && !params) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, stream, &s); r != 0) return r;
  // The arguments are copied now: the caller may free what params points to when this returns.
  auto args = std::make_shared<std::vector<max_align_t>>((k.args_bytes + sizeof(max_align_t) - 1) / sizeof(max_align_t) + 1);
  for (size_t i = 0; i < k.param_sizes.size(); i++) {
    if (!params[i]) return CUDA_ERROR_INVALID_VALUE;
    memcpy(reinterpret_cast<unsigned char*>(args->data()) + k.param_offsets[i], params[i], k.param_sizes[i]);
  }
  const LaunchShape shape{{gx, gy, gz}, {bx, by, bz}};
  const int device = ctx->device;
  return submit(lk, s, [&k, device, shape, args]() {
    uint64_t number;
    {
      std::lock_guard<std::mutex> g(S.lock);
      number = S.launches++;
    }
    Fault fault = run_kernel(k, device, shape, reinterpret_cast<const unsigned char*>(args->data()), number);
    if (fault.kind != FaultKind::None) fputs(fault.report.c_str(), stderr);
    return fault.code;
  }, false);
}

CUresult fo_emu_enqueue_host_work(CUstream stream, const char* call, const fo_emu_operand* operands, size_t operand_count,
                                  CUresult (*run)(void* payload), void* payload, void (*release)(void* payload)) {
  // Released with the last queue entry or graph that holds it (under the emulator's lock).
  std::shared_ptr<void> owned(payload, [release](void* p) {
    if (release) release(p);
  });
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!call || !run || (operand_count && !operands)) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, stream, &s); r != 0) return r;
  std::vector<CheckedOperand> checked = checked_operands(operands, operand_count);
  const int device = ctx->device;
  return submit(lk, s, [name = std::string(call), checked, device, run, owned]() {
    if (CUresult fault = operand_fault(name, checked, device); fault != CUDA_SUCCESS) return fault;
    const KernelFloatEnvironment environment;
    return run(owned.get());
  }, false);
}

CUresult fo_emu_enqueue_collective(CUstream stream, const char* call, const void* key, int participants, int index,
                                   const fo_emu_operand* operands, size_t operand_count,
                                   CUresult (*run)(void* const* payloads, int participants), void* payload,
                                   void (*release)(void* payload), const void* (*next_key)(void* payload)) {
  std::shared_ptr<void> owned(payload, [release](void* p) {
    if (release) release(p);
  });
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!call || !key || !run || participants < 1 || index < 0 || index >= participants || (operand_count && !operands)) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  Stream* s;
  if (CUresult r = resolve(ctx, stream, &s); r != 0) return r;
  std::function<CUresult()> check = [name = std::string(call), checked = checked_operands(operands, operand_count),
                                     device = ctx->device]() { return operand_fault(name, checked, device); };
  if (s->capturing) {  // each launch of the graph joins a collective of its own
    if (s->invalidated) return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    if (!next_key) {
      invalidate(s);
      return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    auto c = std::make_shared<CapturedCollective>();
    *c = CapturedCollective{call, participants, index, check, run, owned, next_key};
    s->captured->push_back(Node{nullptr, c});
    return CUDA_SUCCESS;
  }
  return join_collective(lk, s, key, participants, index, std::move(check), run, owned);
}

CUresult fo_emu_abort_collective(const void* key) {
  FO_EMU_LOCK;
  auto it = open_collectives.find(key);
  if (it == open_collectives.end()) return CUDA_SUCCESS;  // complete, or never started: nothing waits
  std::shared_ptr<Rendezvous> r = it->second;
  open_collectives.erase(it);
  r->aborted = true;
  S.changed.notify_all();
  return CUDA_SUCCESS;
}

// ---- Streams ----

CUresult cuStreamCreate(CUstream* out, unsigned int flags) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out || (flags & ~unsigned(CU_STREAM_NON_BLOCKING)) != 0) return CUDA_ERROR_INVALID_VALUE;
  *out = reinterpret_cast<CUstream>(new_stream(ctx, (flags & CU_STREAM_NON_BLOCKING) == 0));
  return CUDA_SUCCESS;
}

CUresult cuStreamDestroy(CUstream handle) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (handle == nullptr || handle == CU_STREAM_LEGACY || handle == CU_STREAM_PER_THREAD || !S.handles.count(handle)) {
    return CUDA_ERROR_INVALID_HANDLE;
  }
  auto* s = reinterpret_cast<Stream*>(handle);
  if (s->ctx != ctx) return CUDA_ERROR_INVALID_CONTEXT;
  // Its queued work still runs: the queue holds the operations, not the stream.
  destroy_stream(s);
  return CUDA_SUCCESS;
}

CUresult cuStreamQuery(CUstream handle) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  if (CUresult r = refuse_wait_during_capture(ctx, s); r != 0) return r;
  std::shared_ptr<Op> last = s->last;
  if (!last || last->done) return ctx->sticky;
  demand(last);  // the host asks: the queued work runs now, as it would on a device
  S.changed.notify_all();
  return CUDA_ERROR_NOT_READY;
}

CUresult cuStreamSynchronize(CUstream handle) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  if (CUresult r = refuse_wait_during_capture(ctx, s); r != 0) return r;
  std::shared_ptr<Op> last = s->last;
  wait_for(lk, last);
  return ctx->sticky;
}

CUresult cuStreamGetCtx(CUstream handle, CUcontext* out) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) {
    // A stream of another context names that context.
    if (r != CUDA_ERROR_INVALID_CONTEXT) return r;
    *out = reinterpret_cast<CUcontext>(reinterpret_cast<Stream*>(handle)->ctx);
    return CUDA_SUCCESS;
  }
  *out = reinterpret_cast<CUcontext>(s->ctx);
  return CUDA_SUCCESS;
}

// ---- Capture and graphs ----

CUresult cuStreamBeginCapture(CUstream handle, CUstreamCaptureMode mode) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  if (s->legacy) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;  // the legacy stream cannot be captured
  if (s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
  if (mode != CU_STREAM_CAPTURE_MODE_GLOBAL && mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
      mode != CU_STREAM_CAPTURE_MODE_RELAXED) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  s->capturing = true;
  s->invalidated = false;
  s->mode = mode;
  s->capture_thread = std::this_thread::get_id();
  s->captured = std::make_shared<Nodes>();
  return CUDA_SUCCESS;
}

CUresult cuStreamEndCapture(CUstream handle, CUgraph* out) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out) return CUDA_ERROR_INVALID_VALUE;
  Stream* s;
  if (CUresult r = resolve(ctx, handle, &s); r != 0) return r;
  if (!s->capturing) return CUDA_ERROR_ILLEGAL_STATE;
  if (s->mode != CU_STREAM_CAPTURE_MODE_RELAXED && s->capture_thread != std::this_thread::get_id()) {
    return CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
  }
  s->capturing = false;
  std::shared_ptr<Nodes> nodes = std::move(s->captured);
  if (s->invalidated) {
    *out = nullptr;
    return CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
  }
  auto* g = new Graph{std::move(nodes)};
  S.handles.insert(g);
  *out = reinterpret_cast<CUgraph>(g);
  return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec* out, CUgraph graph, unsigned long long flags) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!out || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (!S.handles.count(graph)) return CUDA_ERROR_INVALID_HANDLE;
  auto* e = new GraphExec{ctx, reinterpret_cast<Graph*>(graph)->nodes};
  ctx->execs.insert(e);
  S.handles.insert(e);
  *out = reinterpret_cast<CUgraphExec>(e);
  return CUDA_SUCCESS;
}

CUresult cuGraphLaunch(CUgraphExec handle, CUstream stream) {
  FO_EMU_LOCK;
  FO_EMU_CONTEXT;
  if (!S.handles.count(handle)) return CUDA_ERROR_INVALID_HANDLE;
  auto* e = reinterpret_cast<GraphExec*>(handle);
  if (e->ctx != ctx) return CUDA_ERROR_INVALID_CONTEXT;
  Stream* s;
  if (CUresult r = resolve(ctx, stream, &s); r != 0) return r;
  std::shared_ptr<Nodes> nodes = e->nodes;  // a launched graph runs even if its exec is destroyed
  // The nodes between collectives run as one queued op each; each captured collective part joins a
  // collective of its own, under its library's next key for this participant.
  auto segment = std::make_shared<std::vector<std::function<CUresult()>>>();
  auto flush = [&]() -> CUresult {
    if (segment->empty()) return CUDA_SUCCESS;
    auto run = segment;
    segment = std::make_shared<std::vector<std::function<CUresult()>>>();
    return submit(lk, s, [run]() {
      for (const auto& work : *run) {
        if (CUresult r = work(); r != CUDA_SUCCESS) return r;
      }
      return CUDA_SUCCESS;
    }, false);
  };
  for (const Node& node : *nodes) {
    if (!node.collective) {
      segment->push_back(node.work);
      continue;
    }
    if (CUresult r = flush(); r != CUDA_SUCCESS) return r;
    const CapturedCollective& c = *node.collective;
    const void* key = c.next_key(c.payload.get());
    if (CUresult r = join_collective(lk, s, key, c.participants, c.index, c.check, c.run, c.payload); r != CUDA_SUCCESS) return r;
  }
  return flush();
}

CUresult cuGraphDestroy(CUgraph graph) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!S.handles.count(graph)) return CUDA_ERROR_INVALID_HANDLE;
  S.handles.erase(graph);
  delete reinterpret_cast<Graph*>(graph);
  return CUDA_SUCCESS;
}

CUresult cuGraphExecDestroy(CUgraphExec handle) {
  FO_EMU_LOCK;
  if (!S.initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (!S.handles.count(handle)) return CUDA_ERROR_INVALID_HANDLE;
  auto* e = reinterpret_cast<GraphExec*>(handle);
  e->ctx->execs.erase(e);
  S.handles.erase(e);
  delete e;
  return CUDA_SUCCESS;
}

// Every other entry point JCuda imports (stubs.cpp, generated by build.sh) lands here.
CUresult fo_emu_not_supported(const char* name) {
  fprintf(stderr, "fusedopt CUDA emulator: %s is not emulated (CUDA_ERROR_NOT_SUPPORTED)\n", name);
  return CUDA_ERROR_NOT_SUPPORTED;
}

}  // extern "C"
