// Kernel families and the binaries that select them: cuModuleLoadData receives the fatbin the
// Java side loads from its classpath; the emulator holds a copy of each (build.sh embeds the
// installed kernel binaries) and loads the family whose binary matches byte for byte.
#include "emulator.h"

#include <cstring>

namespace fo_emu {
namespace {

std::vector<Family>& families() {
  static auto* all = new std::vector<Family>();  // never destroyed: kernels may run during exit
  return *all;
}

constexpr uint32_t kFatbinMagic = 0xBA55ED50u;

// The size of a fatbin from its header (magic, version, header size, payload size); 0 if not one.
size_t fatbin_size(const unsigned char* image) {
  uint32_t magic;
  uint16_t header;
  uint64_t payload;
  memcpy(&magic, image, 4);
  if (magic != kFatbinMagic) return 0;
  memcpy(&header, image + 6, 2);
  memcpy(&payload, image + 8, 8);
  return header + payload;
}

}  // namespace

void register_family(Family family) { families().push_back(std::move(family)); }

const Family* family_for_image(const void* image) {
  const auto* bytes = static_cast<const unsigned char*>(image);
  size_t size = fatbin_size(bytes);
  for (const Family& f : families()) {
    if (!f.image) continue;
    // A family without a fatbin (the emulator's own test kernels) is named by a C string.
    const size_t want = size ? size : strnlen(reinterpret_cast<const char*>(bytes), 256) + 1;
    if (want == f.image_size && memcmp(bytes, f.image, want) == 0) return &f;
  }
  return nullptr;
}

}  // namespace fo_emu
