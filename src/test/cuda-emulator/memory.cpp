// Device memory: each device owns a reserved range of the process's address space, so a device
// pointer is never a valid host pointer and the device of any pointer is known from its value.
// Allocations never reuse addresses (a bump pointer with a guard page between allocations), so a
// use after free is always recognized as one; freed pages are unmapped. Each allocation has the
// race checks' stamps beside it (16 bytes per 32, see access_stamps.h).
#include "emulator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace fo_emu {
namespace {

constexpr size_t kReserved = size_t(256) << 30;   // address space per device
constexpr size_t kCapacity = size_t(4) << 30;     // what cuMemGetInfo reports as total

struct AddressSpace {
  uintptr_t begin = 0;
  uintptr_t next = 0;
  size_t used = 0;
};

std::mutex lock;
AddressSpace spaces[kDeviceCount];
std::map<uintptr_t, Allocation> allocations;  // by base, live and freed
uint64_t next_id = 1;

size_t page() {
  static const size_t size = (size_t)sysconf(_SC_PAGESIZE);
  return size;
}

size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

size_t granules(size_t bytes) { return bytes == 0 ? 1 : (bytes + kGranule - 1) / kGranule; }  // calloc(0) may fail

void reserve_once() {
  if (spaces[0].begin) return;
  for (int d = 0; d < kDeviceCount; d++) {
    void* p = mmap(nullptr, kReserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      perror("fusedopt CUDA emulator: cannot reserve device address space");
      abort();
    }
    spaces[d].begin = spaces[d].next = (uintptr_t)p + page();  // never hand out the first page
  }
}

// The allocation containing address (caller holds the lock), or null.
const Allocation* containing(uintptr_t address) {
  auto it = allocations.upper_bound(address);
  if (it == allocations.begin()) return nullptr;
  --it;
  const Allocation& a = it->second;
  return address - a.base < a.size || (a.size == 0 && address == a.base) ? &a : nullptr;
}

}  // namespace

uintptr_t device_alloc(int device, size_t bytes) {
  std::lock_guard<std::mutex> guard(lock);
  reserve_once();
  AddressSpace& s = spaces[device];
  const size_t mapped = round_up(bytes == 0 ? 1 : bytes, page());
  if (s.used + bytes > kCapacity || s.next + mapped + page() > s.begin + kReserved - page()) return 0;
  const uintptr_t base = s.next;
  // Zero stamps: nothing accessed. calloc maps large blocks fresh, so pages cost only when touched.
  auto* stamps = static_cast<GranuleStamps*>(calloc(granules(bytes), sizeof(GranuleStamps)));
  if (!stamps) return 0;
  if (mprotect((void*)base, mapped, PROT_READ | PROT_WRITE) != 0) {
    free(stamps);
    return 0;
  }
  memset((void*)base, 0xFF, mapped);  // cuMemAlloc does not zero: every float format reads NaN
  s.next = base + mapped + page();     // a guard page that is never mapped
  s.used += bytes;
  allocations[base] = Allocation{base, bytes, device, next_id++, true, stamps};
  return base;
}

bool device_free(uintptr_t base) {
  std::lock_guard<std::mutex> guard(lock);
  auto it = allocations.find(base);
  if (it == allocations.end() || !it->second.live) return false;
  Allocation& a = it->second;
  const size_t mapped = round_up(a.size == 0 ? 1 : a.size, page());
  madvise((void*)base, mapped, MADV_DONTNEED);
  mprotect((void*)base, mapped, PROT_NONE);
  spaces[a.device].used -= a.size;
  a.live = false;
  free(a.stamps);
  a.stamps = nullptr;
  return true;
}

bool find_live(uintptr_t address, size_t bytes, Allocation* out) {
  std::lock_guard<std::mutex> guard(lock);
  const Allocation* a = containing(address);
  if (!a || !a->live || address - a->base > a->size || bytes > a->size - (address - a->base)) return false;
  *out = *a;
  return true;
}

bool find_any(uintptr_t address, Allocation* out) {
  std::lock_guard<std::mutex> guard(lock);
  const Allocation* a = containing(address);
  if (!a) return false;
  *out = *a;
  return true;
}

bool find_below(uintptr_t address, Allocation* out) {
  std::lock_guard<std::mutex> guard(lock);
  auto it = allocations.upper_bound(address);
  if (it == allocations.begin()) return false;
  *out = std::prev(it)->second;
  return true;
}

int device_of_address(uintptr_t address) {
  std::lock_guard<std::mutex> guard(lock);
  reserve_once();
  for (int d = 0; d < kDeviceCount; d++) {
    if (address - (spaces[d].begin - page()) < kReserved) return d;
  }
  return -1;
}

size_t device_used(int device) {
  std::lock_guard<std::mutex> guard(lock);
  return spaces[device].used;
}

size_t device_capacity() { return kCapacity; }

void free_all(int device) {
  std::vector<uintptr_t> live;
  {
    std::lock_guard<std::mutex> guard(lock);
    for (auto& [base, a] : allocations) {
      if (a.live && a.device == device) live.push_back(base);
    }
  }
  for (uintptr_t base : live) device_free(base);
}

std::string access_problem(uintptr_t a, size_t n, const char* op, int device, FaultKind* kind, Allocation* out) {
  char what[512];
  const int owner = device_of_address(a);
  Allocation alloc;
  if (owner < 0) {
    *kind = FaultKind::HostPointer;
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": not device memory (a host or null pointer)", op, n, a);
  } else if (owner != device) {
    *kind = FaultKind::OtherDevice;
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": memory of device %d, the work runs on device %d", op, n, a,
             owner, device);
  } else if (!find_any(a, &alloc)) {
    *kind = FaultKind::OutOfBounds;
    if (find_below(a, &alloc)) {
      snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": %zu bytes after the end of %s allocation #%" PRIu64
               " (%zu bytes at 0x%" PRIxPTR ")", op, n, a, (size_t)(a - alloc.base - alloc.size), alloc.live ? "live" : "freed",
               alloc.id, alloc.size, alloc.base);
    } else {
      snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": in no allocation of device %d", op, n, a, owner);
    }
  } else if (!alloc.live) {
    *kind = FaultKind::UseAfterFree;
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": use after free of allocation #%" PRIu64
             " (%zu bytes at 0x%" PRIxPTR ")", op, n, a, alloc.id, alloc.size, alloc.base);
  } else if (a + n > alloc.base + alloc.size) {
    *kind = FaultKind::OutOfBounds;
    snprintf(what, sizeof what, "%s of %zu bytes at 0x%" PRIxPTR ": %zu bytes past the end of allocation #%" PRIu64
             " (%zu bytes at 0x%" PRIxPTR ")", op, n, a, (size_t)(a + n - alloc.base - alloc.size), alloc.id, alloc.size, alloc.base);
  } else {
    *out = alloc;
    return "";
  }
  return what;
}

void clear_access_stamps() {
  std::lock_guard<std::mutex> guard(lock);
  for (auto& [base, a] : allocations) {
    if (a.stamps) memset(a.stamps, 0, granules(a.size) * sizeof(GranuleStamps));
  }
}

}  // namespace fo_emu
