// A test double of NCCL 2 (libnccl.so.2, the library fusedopt's binding, io.fusedopt.cuda.Nccl,
// loads through JNA): the entry points fusedopt calls, emulated over the CUDA driver emulator for
// ranks that are threads of one process, each in the primary context of an emulated device. A
// collective is queued on each rank's stream through the emulator's collective hook (host_work.h,
// fo_emu_enqueue_collective): it runs once every rank has queued its part and each rank's earlier
// work on its stream is done, like a kernel launch of every rank at once; its device buffers are
// checked as a kernel's accesses are. Only these functions exist (a call to any other fails to
// bind in JNA, naming it).
//
// The arithmetic, defined here because NCCL promises no order (fusedopt holds NCCL results to its
// own reference where it can only compare sums: within rounding; copies are exact):
//   ncclAllGather: recv[r * count + i] = send_r[i], rank r's contribution at its rank's offset;
//   ncclBroadcast: recv_r[i] = send_root[i] on every rank r;
//   ncclAllReduce / ncclReduceScatter with ncclSum: for each element, acc = x_0, then
//     acc = acc + x_r for r = 1, 2, ... in rank order, in float32 for float16, bfloat16 and
//     float32 (16-bit values widened exactly, the sum rounded once to the type), in float64 for
//     float64, then stored; ncclAvg divides that sum by the rank count (float32 or float64
//     division); ncclReduceScatter gives rank r elements [r * count, (r + 1) * count).
//   Integers (int8, uint8, int64) are copied only; other reduction operations and data types are
//   refused (ncclInvalidArgument).
// A collective queued during a stream capture is recorded into the graph, and every launch of the
// graph joins a collective of its own (each rank's next one): ranks must replay in the same order.
// ncclCommInitRank waits (on the host, up to 60 s) until every rank of the id has called it;
// ncclCommAbort ends the collectives not every rank joined (their queued parts fail, poisoning those
// contexts) and makes every later collective of the world fail with ncclRemoteError;
#include "host_work.h"

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

// NCCL 2's ABI (nccl.h is not among the headers the emulator requires).
enum Result {
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,
};
enum DataType { kInt8 = 0, kUint8 = 1, kInt64 = 4, kFloat16 = 6, kFloat32 = 7, kFloat64 = 8, kBfloat16 = 9 };
enum RedOp { kSum = 0, kAvg = 4 };
constexpr int kVersion = 22707;  // what ncclGetVersion reports: 2.27.7
constexpr size_t kUniqueIdBytes = 128;

struct UniqueId {
  char internal[kUniqueIdBytes];
};

size_t type_bytes(int type) {
  switch (type) {
    case kInt8: case kUint8: return 1;
    case kFloat16: case kBfloat16: return 2;
    case kFloat32: return 4;
    case kFloat64: case kInt64: return 8;
    default: return 0;
  }
}

// The ranks of one unique id.
struct World {
  int size = 0;
  int joined = 0;
  bool aborted = false;  // a rank called ncclCommAbort: every collective fails from then on
  std::deque<char> calls;  // one stable address per collective: the hook's key
  std::vector<size_t> next_call;  // by rank: the index of its next collective
};

struct Comm {
  World* world;
  int rank;
  int device;
};

std::mutex lock;
std::condition_variable joined;
std::map<std::string, World*>& worlds = *new std::map<std::string, World*>();
uint64_t ids = 0;
thread_local std::string last_error;

enum class Kind { AllGather, Broadcast, AllReduce, ReduceScatter };

// One rank's part of a collective.
struct Part {
  World* world;  // for a captured part's key at each graph launch (next_key)
  int rank;
  Kind kind;
  const char* send;
  char* recv;
  size_t count;  // per rank: sendcount (all-gather), recvcount (reduce-scatter), count (others)
  int type;
  int op;
  int root;
};

float widen(int type, const char* p) {
  uint16_t bits;
  memcpy(&bits, p, 2);
  if (type == kBfloat16) return __bfloat162float(__ushort_as_bfloat16(bits));
  return __half2float(__ushort_as_half(bits));
}

void narrow(int type, float v, char* p) {
  uint16_t bits = type == kBfloat16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v)) : __half_as_ushort(__float2half_rn(v));
  memcpy(p, &bits, 2);
}

// out = the reduction of element i of every rank's `inputs` (rank order, see the file comment).
void reduce_element(const std::vector<const char*>& inputs, size_t i, int type, int op, char* out) {
  const size_t n = inputs.size();
  if (type == kFloat64) {
    double acc, x;
    memcpy(&acc, inputs[0] + i * 8, 8);
    for (size_t r = 1; r < n; r++) {
      memcpy(&x, inputs[r] + i * 8, 8);
      acc = acc + x;
    }
    if (op == kAvg) acc = acc / (double)n;
    memcpy(out, &acc, 8);
    return;
  }
  auto read = [&](size_t r) {
    if (type == kFloat32) {
      float v;
      memcpy(&v, inputs[r] + i * 4, 4);
      return v;
    }
    return widen(type, inputs[r] + i * 2);
  };
  float acc = read(0);
  for (size_t r = 1; r < n; r++) acc = acc + read(r);
  if (op == kAvg) acc = acc / (float)n;
  if (type == kFloat32) memcpy(out, &acc, 4);
  else narrow(type, acc, out);
}

CUresult run_collective(void* const* payloads, int ranks) {
  std::vector<const Part*> parts;
  for (int r = 0; r < ranks; r++) parts.push_back(static_cast<const Part*>(payloads[r]));
  const Part& p0 = *parts[0];
  for (const Part* p : parts) {
    if (p->kind != p0.kind || p->count != p0.count || p->type != p0.type || p->op != p0.op || p->root != p0.root) {
      fprintf(stderr, "fusedopt NCCL double: the ranks called different collectives at the same point (kind, count, type,"
                      " operation or root differ)\n");
      return CUDA_ERROR_ILLEGAL_STATE;
    }
  }
  const size_t bytes = type_bytes(p0.type), n = p0.count;
  switch (p0.kind) {
    case Kind::AllGather: {
      std::vector<std::vector<char>> sent;  // copied first: a rank's recv may hold its own send
      for (const Part* p : parts) sent.emplace_back(p->send, p->send + n * bytes);
      for (const Part* p : parts) {
        for (int r = 0; r < ranks; r++) memcpy(p->recv + (size_t)r * n * bytes, sent[(size_t)r].data(), n * bytes);
      }
      break;
    }
    case Kind::Broadcast: {
      std::vector<char> sent(parts[(size_t)p0.root]->send, parts[(size_t)p0.root]->send + n * bytes);
      for (const Part* p : parts) memcpy(p->recv, sent.data(), n * bytes);
      break;
    }
    case Kind::AllReduce:
    case Kind::ReduceScatter: {
      const size_t total = p0.kind == Kind::AllReduce ? n : n * (size_t)ranks;
      std::vector<std::vector<char>> sent;
      for (const Part* p : parts) sent.emplace_back(p->send, p->send + total * bytes);
      std::vector<const char*> inputs;
      for (const auto& s : sent) inputs.push_back(s.data());
      for (int r = 0; r < ranks; r++) {
        const size_t first = p0.kind == Kind::AllReduce ? 0 : (size_t)r * n;
        for (size_t i = 0; i < n; i++) reduce_element(inputs, first + i, p0.type, p0.op, parts[(size_t)r]->recv + i * bytes);
      }
      break;
    }
  }
  return CUDA_SUCCESS;
}

Result fail(Result r, const std::string& why) {
  last_error = why;
  return r;
}

// The key of rank's next collective of world w: the same on every rank for their n-th collective.
// The caller holds lock.
const void* claim_key(World* w, int rank) {
  size_t index = w->next_call[(size_t)rank]++;
  while (w->calls.size() <= index) w->calls.push_back(0);
  return &w->calls[index];
}

// The key of rank part->rank's next collective of its world (a captured part, at each graph launch).
const void* next_key(void* payload) {
  const Part* part = static_cast<const Part*>(payload);
  std::lock_guard<std::mutex> g(lock);
  return claim_key(part->world, part->rank);
}

// comm is not null: each collective checks it first.
Result enqueue(Comm* comm, const char* call, Part part, size_t send_elements, size_t recv_elements, CUstream stream) {
  const size_t bytes = type_bytes(part.type);
  if (bytes == 0) return fail(kInvalidArgument, std::string(call) + ": data type " + std::to_string(part.type) + " is not emulated");
  if ((part.kind == Kind::AllReduce || part.kind == Kind::ReduceScatter) && part.op != kSum && part.op != kAvg) {
    return fail(kInvalidArgument, std::string(call) + ": only ncclSum and ncclAvg are emulated");
  }
  if ((part.kind == Kind::AllReduce || part.kind == Kind::ReduceScatter)
      && (part.type == kInt8 || part.type == kUint8 || part.type == kInt64)) {
    return fail(kInvalidArgument, std::string(call) + ": reductions of integers are not emulated");
  }
  if (part.kind == Kind::Broadcast && (part.root < 0 || part.root >= comm->world->size)) {
    return fail(kInvalidArgument, std::string(call) + ": root " + std::to_string(part.root) + " is not a rank");
  }
  const void* key;
  {
    std::lock_guard<std::mutex> g(lock);
    World* w = comm->world;
    if (w->aborted) return fail(kRemoteError, std::string(call) + ": a rank aborted the communicator");
    key = claim_key(w, comm->rank);
  }
  const fo_emu_operand operands[2] = {
      {(CUdeviceptr)part.send, send_elements * bytes, 0, "sendbuff"},
      {(CUdeviceptr)part.recv, recv_elements * bytes, 1, "recvbuff"},
  };
  const bool sends = part.kind != Kind::Broadcast || part.root == comm->rank;
  Part* payload = new Part(part);
  const CUresult r = fo_emu_enqueue_collective(stream, call, key, comm->world->size, comm->rank, sends ? operands : operands + 1,
                                               sends ? 2 : 1, run_collective, payload, [](void* p) { delete static_cast<Part*>(p); },
                                               next_key);
  if (r != CUDA_SUCCESS) return fail(kUnhandledCudaError, std::string(call) + ": CUDA error " + std::to_string(r));
  return kSuccess;
}

}  // namespace

extern "C" {

typedef Comm* ncclComm_t;

const char* ncclGetErrorString(int result) {
  switch (result) {
    case kSuccess: return "no error";
    case kUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case kSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case kInternalError: return "internal error - please report this issue to the NCCL developers";
    case kInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case kInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case kRemoteError: return "remote process exited or there was a network error";
    default: return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t) {
  return last_error.c_str();
}

int ncclGetVersion(int* version) {
  if (!version) return fail(kInvalidArgument, "ncclGetVersion: null pointer");
  *version = kVersion;
  return kSuccess;
}

int ncclGetUniqueId(UniqueId* id) {
  if (!id) return fail(kInvalidArgument, "ncclGetUniqueId: null pointer");
  std::lock_guard<std::mutex> g(lock);
  memset(id->internal, 0, kUniqueIdBytes);
  snprintf(id->internal, kUniqueIdBytes, "fusedopt-nccl-double-%llu", (unsigned long long)++ids);
  return kSuccess;
}

int ncclCommInitRank(ncclComm_t* comm, int nranks, UniqueId id, int rank) {
  if (!comm) return fail(kInvalidArgument, "ncclCommInitRank: null pointer");
  if (nranks < 1 || rank < 0 || rank >= nranks) {
    return fail(kInvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(nranks));
  }
  CUdevice device;
  if (cuCtxGetDevice(&device) != CUDA_SUCCESS) return fail(kUnhandledCudaError, "ncclCommInitRank: no current CUDA context");
  const std::string key(id.internal, strnlen(id.internal, kUniqueIdBytes));
  std::unique_lock<std::mutex> g(lock);
  World*& w = worlds[key];
  if (!w) {
    w = new World();
    w->size = nranks;
    w->next_call.assign((size_t)nranks, 0);
  }
  if (w->size != nranks) return fail(kInvalidArgument, "ncclCommInitRank: ranks of one id disagree on their number");
  World* world = w;
  world->joined++;
  joined.notify_all();
  if (!joined.wait_for(g, std::chrono::seconds(60), [&] { return world->joined >= world->size; })) {
    return fail(kSystemError, "ncclCommInitRank: the other ranks did not join within 60 s");
  }
  *comm = new Comm{world, rank, (int)device};
  return kSuccess;
}

int ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return fail(kInvalidArgument, "ncclCommDestroy: null communicator");
  delete comm;  // the world stays: its calls are keys the driver may still hold
  return kSuccess;
}

// Ends the world's collectives that not every rank joined (the driver fails the parts queued so far,
// poisoning their contexts: nothing waits for them any more), marks the world aborted, and frees the
// communicator, as ncclCommAbort does.
int ncclCommAbort(ncclComm_t comm) {
  if (!comm) return fail(kInvalidArgument, "ncclCommAbort: null communicator");
  std::vector<const void*> keys;
  {
    std::lock_guard<std::mutex> g(lock);
    comm->world->aborted = true;
    for (const char& call : comm->world->calls) keys.push_back(&call);
  }
  for (const void* key : keys) fo_emu_abort_collective(key);
  delete comm;
  return kSuccess;
}

int ncclCommCuDevice(const ncclComm_t comm, int* device) {
  if (!comm || !device) return fail(kInvalidArgument, "ncclCommCuDevice: null pointer");
  *device = comm->device;
  return kSuccess;
}

int ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, int datatype, ncclComm_t comm, CUstream stream) {
  if (!comm) return fail(kInvalidArgument, "ncclAllGather: null communicator");
  return enqueue(comm, "ncclAllGather", Part{comm->world, comm->rank, Kind::AllGather, (const char*)sendbuff, (char*)recvbuff, sendcount, datatype, kSum, 0},
                 sendcount, sendcount * (size_t)comm->world->size, stream);
}

int ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, int datatype, int root, ncclComm_t comm, CUstream stream) {
  if (!comm) return fail(kInvalidArgument, "ncclBroadcast: null communicator");
  return enqueue(comm, "ncclBroadcast", Part{comm->world, comm->rank, Kind::Broadcast, (const char*)sendbuff, (char*)recvbuff, count, datatype, kSum, root},
                 count, count, stream);
}

int ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, int datatype, int op, ncclComm_t comm, CUstream stream) {
  if (!comm) return fail(kInvalidArgument, "ncclAllReduce: null communicator");
  return enqueue(comm, "ncclAllReduce", Part{comm->world, comm->rank, Kind::AllReduce, (const char*)sendbuff, (char*)recvbuff, count, datatype, op, 0},
                 count, count, stream);
}

int ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, int datatype, int op, ncclComm_t comm,
                      CUstream stream) {
  if (!comm) return fail(kInvalidArgument, "ncclReduceScatter: null communicator");
  return enqueue(comm, "ncclReduceScatter",
                 Part{comm->world, comm->rank, Kind::ReduceScatter, (const char*)sendbuff, (char*)recvbuff, recvcount, datatype, op, 0},
                 recvcount * (size_t)comm->world->size, recvcount, stream);
}

}  // extern "C"
