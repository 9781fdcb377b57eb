// The emulator's interface for its other test doubles (libcublas.so.12, cublas.cpp; libnccl.so.2,
// nccl.cpp): work that a library would run as kernels, queued on a stream like a kernel launch and computed on the host
// when the device worker reaches it. Exported by libcuda.so.1; a C interface, as between two
// separately linked libraries.
#pragma once
#include <cuda.h>
#include <stddef.h>

extern "C" {

// Device memory a piece of work reads or writes, checked each time the work runs, as a kernel's
// accesses are.
struct fo_emu_operand {
  CUdeviceptr address;
  size_t bytes;
  int written;       // 0: read only
  const char* name;  // for the fault report, e.g. "A"
};

// Queues run(payload) on `stream` (0 and CU_STREAM_LEGACY: the legacy default stream) of the
// calling thread's current context, ordered as a kernel launch there would be; on a capturing
// stream it is recorded into the capture instead, and every launch of the graph runs it again.
// Before each run, every operand must lie in live device memory of the context's device;
// otherwise the run faults as a kernel would: CUDA_ERROR_ILLEGAL_ADDRESS poisons the context, a
// report naming `call` and the operand goes to stderr, and run is not called. An error that run
// returns poisons the context likewise. release(payload) is called once, when nothing can run it
// any more (at once when queuing fails), possibly on the device worker under the emulator's lock,
// so it must not call the driver. Returns what a kernel launch would return at the call:
// the context's errors, CUDA_ERROR_INVALID_HANDLE for an unknown stream, the capture errors.
CUresult fo_emu_enqueue_host_work(CUstream stream, const char* call, const fo_emu_operand* operands, size_t operand_count,
                                  CUresult (*run)(void* payload), void* payload, void (*release)(void* payload));

// Queues participant `index` of the `participants` of the collective `key` (each queues its own
// part on its own stream, in its own context, with the same key, participants and run): when every
// participant has queued its part and each part's earlier work on its stream is done,
// run(payloads, participants) runs once for all of them (payloads by index), and every part is done.
// A host that waits for any part waits for the whole collective. Each participant's operands are
// checked on its device before the run, as fo_emu_enqueue_host_work's are. On a capturing stream
// the part is recorded instead, and each launch of the graph joins a collective of its own, under
// the key next_key(payload) gives then (the library's next collective of this participant: every
// participant replays its graph in the same order); without next_key a capture is refused
// (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED). A key may be reused once its collective is complete. Returns what fo_emu_enqueue_host_work does,
// and CUDA_ERROR_INVALID_VALUE for an index out of range or taken, or a participant count or run
// that differs from the others'.
CUresult fo_emu_enqueue_collective(CUstream stream, const char* call, const void* key, int participants, int index,
                                   const fo_emu_operand* operands, size_t operand_count,
                                   CUresult (*run)(void* const* payloads, int participants), void* payload,
                                   void (*release)(void* payload), const void* (*next_key)(void* payload));

// Ends the collective `key` that not every participant joined (a rank that died): the parts queued
// so far run at once and fail with CUDA_ERROR_LAUNCH_FAILED, poisoning their contexts as a faulting
// kernel would, so that nothing waits for it any more. Nothing happens for a complete or unknown key.
CUresult fo_emu_abort_collective(const void* key);
}
