// The built-in variables of the running device thread, shared by the kernels (device_runtime.h)
// and the emulator that sets them before it switches to a thread (execution.cpp).
#pragma once
#include <vector_types.h>

struct FoEmuBuiltins {
  uint3 threadIdx;
  uint3 blockIdx;
  dim3 blockDim;
  dim3 gridDim;
};
#ifdef FO_EMU_KERNEL_UNIT
// Kernel code sees them const, which they are for as long as one device thread runs (the emulator
// sets them before it switches to the thread and while the thread waits at a barrier): a read of a
// const object is no memory access the instrumentation reports, and the compiler may keep the
// values in registers across stores and barriers.
extern "C" const FoEmuBuiltins fo_emu_builtins;
#else
extern "C" FoEmuBuiltins fo_emu_builtins;
#endif
