// Included after a kernels/*.cu in the unit build.sh generates for each family: describes every
// kernel entry point from its C++ type, so that a launch can copy the arguments that
// cuLaunchKernel's void** kernelParams points to (the caller may free them once the call returns).
#pragma once
#include "emulator.h"

#include <array>
#include <utility>

namespace fo_emu {

template <typename F>
struct KernelSignature;

template <typename... A>
struct KernelSignature<void (*)(A...)> {
  static constexpr size_t count = sizeof...(A);
  static constexpr std::array<size_t, sizeof...(A)> sizes{sizeof(A)...};
  // Each argument at a 16-byte aligned offset of the launch's argument block.
  static constexpr std::array<size_t, sizeof...(A)> offsets = [] {
    std::array<size_t, sizeof...(A)> o{};
    size_t at = 0;
    for (size_t i = 0; i < sizeof...(A); i++) {
      o[i] = at;
      at += (sizes[i] + 15) / 16 * 16;
    }
    return o;
  }();
  static constexpr size_t bytes = [] {
    size_t at = 0;
    for (size_t i = 0; i < sizeof...(A); i++) at += (sizes[i] + 15) / 16 * 16;
    return at;
  }();

  // The argument block belongs to the emulator: reading it is not a kernel access.
  template <auto Fn, size_t... I>
  __attribute__((no_sanitize_thread, no_sanitize_undefined)) static void call(const unsigned char* args,
                                                                               std::index_sequence<I...>) {
    Fn(*reinterpret_cast<const A*>(args + offsets[I])...);
  }
};

template <auto Fn>
__attribute__((no_sanitize_thread, no_sanitize_undefined)) void invoke_kernel(const unsigned char* args) {
  using S = KernelSignature<decltype(Fn)>;
  S::template call<Fn>(args, std::make_index_sequence<S::count>{});
}

template <auto Fn>
Kernel describe_kernel(const char* name) {
  using S = KernelSignature<decltype(Fn)>;
  return Kernel{name, std::vector<size_t>(S::sizes.begin(), S::sizes.end()),
                std::vector<size_t>(S::offsets.begin(), S::offsets.end()), S::bytes, &invoke_kernel<Fn>};
}

struct FamilyRegistration {
  FamilyRegistration(const char* name, const unsigned char* image, size_t image_size, std::vector<Kernel> kernels) {
    register_family(Family{name, std::move(kernels), image, image_size});
  }
};

}  // namespace fo_emu

#define FO_EMU_KERNEL(fn) ::fo_emu::describe_kernel<&fn>(#fn)
