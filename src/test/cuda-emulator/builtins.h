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
extern "C" FoEmuBuiltins fo_emu_builtins;
