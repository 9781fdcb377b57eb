// Who accessed memory during the current launch (global memory: which block) or barrier interval
// (__shared__ memory: which thread of the block), and whether an access conflicts with another
// party's: the race checks of execution.cpp.
//
// A stamp names one party of one launch or interval: each launch's (interval's) stamps lie above
// the base it starts with, and above every earlier one's, so a stamp at or below the current base
// is stale and nothing needs clearing between launches or barriers.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fo_emu {

enum class Access { Read, Write, Atomic };

// A stamp and its flags.
constexpr uint32_t kStampMask = (1u << 28) - 1;
constexpr uint32_t kAtomicWrite = 1u << 28;  // writer: atomics only
constexpr uint32_t kSeveral = 1u << 29;      // more than one party (readers; atomic writers)
constexpr uint32_t kSplit = 1u << 30;        // granule writer: its bytes have stamps of their own

inline uint32_t party_of(uint32_t stamp) { return stamp & kStampMask; }
inline bool is_current(uint32_t stamp, uint32_t base) { return party_of(stamp) > base; }

// The last writer and reader of one byte.
struct AccessStamps {
  uint32_t writer;
  uint32_t reader;
};

// What an access by `me` makes of a byte's stamps; *conflicts tells whether it races with an
// access of another party: a read after another's write, a write after another's read or write,
// an atomic after another's plain read or write (atomics among themselves do not race).
inline AccessStamps next_stamps(AccessStamps e, Access access, uint32_t me, uint32_t base, bool* conflicts) {
  const uint32_t w = e.writer, r = e.reader;
  const bool written = is_current(w, base), read = is_current(r, base);
  const bool other_wrote = written && ((w & kSeveral) || party_of(w) != me);
  const bool other_read = read && ((r & kSeveral) || party_of(r) != me);
  switch (access) {
    case Access::Read:
      *conflicts = other_wrote;
      if (!read) e.reader = me;
      else if (party_of(r) != me) e.reader = me | kSeveral;
      break;
    case Access::Write:
      *conflicts = other_wrote || other_read;
      e.writer = me;
      break;
    case Access::Atomic:  // a plain write of its own stays recorded as such
      *conflicts = (other_wrote && !(w & kAtomicWrite)) || other_read;
      if (!written) e.writer = me | kAtomicWrite;
      else if ((w & kAtomicWrite) && party_of(w) != me) e.writer = me | kAtomicWrite | kSeveral;
      break;
  }
  return e;
}

// Records an access to n bytes with stamps of their own; returns the first that conflicts (its
// stamps before the access in *before), or n.
inline size_t record_bytes(AccessStamps* bytes, size_t n, Access access, uint32_t me, uint32_t base, AccessStamps* before) {
  size_t first = n;
  for (size_t i = 0; i < n; i++) {
    bool conflicts = false;
    const AccessStamps old = bytes[i];
    bytes[i] = next_stamps(old, access, me, base, &conflicts);
    if (conflicts && first == n) {
      first = i;
      *before = old;
    }
  }
  return first;
}

// The stamps of 32 bytes of device memory (a granule, 32-byte aligned): one writer and one reader,
// each with the bytes it accessed, as long as that describes every byte exactly; once the bytes
// differ more (two blocks wrote its two halves, say), each byte gets stamps of its own, kept for
// the launch in GranuleSplits. Half a byte of stamps per byte of memory: the race checks' cost is
// mostly the cache misses on them.
constexpr size_t kGranule = 32;
struct GranuleStamps {
  uint32_t writer;   // a stamp; with kSplit, its bytes' stamps are split[reader]
  uint32_t reader;
  uint32_t written;  // which bytes writer wrote (bit i: byte i)
  uint32_t read;     // which bytes reader read
};
using GranuleSplits = std::vector<std::array<AccessStamps, kGranule>>;

// Records an access to `count` bytes from byte `first` of a granule; returns the first byte that
// conflicts (its stamps before the access in *before), or kGranule.
inline unsigned record_granule(GranuleStamps& g, unsigned first, unsigned count, Access access, uint32_t me, uint32_t base,
                               GranuleSplits& splits, AccessStamps* before) {
  if (g.writer & kSplit) {
    if (is_current(g.writer, base)) {
      const size_t i = record_bytes(&splits[g.reader][first], count, access, me, base, before);
      return i == count ? (unsigned)kGranule : first + (unsigned)i;
    }
    g = GranuleStamps{};  // split in an earlier launch: nothing of this one
  }
  const uint32_t w = is_current(g.writer, base) ? g.writer : 0, r = is_current(g.reader, base) ? g.reader : 0;
  const uint32_t wm = w ? g.written : 0, rm = r ? g.read : 0;
  const uint32_t m = (uint32_t)((1ull << count) - 1) << first;
  if ((w == 0 || w == me) && (r == 0 || r == me) && access != Access::Atomic) {
    // Untouched in this launch, or by this block alone: the common case, which cannot conflict.
    if (access == Access::Read) g = GranuleStamps{w, me, wm, rm | m};
    else g = GranuleStamps{me, r, wm | m, rm};
    return kGranule;
  }
  // Bytes alike (accessed or not, written or not, read or not) get alike stamps: one class each.
  unsigned hit = kGranule;
  uint32_t writer = 0, reader = 0, written = 0, read = 0;
  bool uniform = true;
  for (unsigned c = 0; c < 8; c++) {
    const bool in_access = c & 1, in_written = c & 2, in_read = c & 4;
    const uint32_t bytes = (in_access ? m : ~m) & (in_written ? wm : ~wm) & (in_read ? rm : ~rm);
    if (!bytes) continue;
    const AccessStamps old{in_written ? w : 0, in_read ? r : 0};
    AccessStamps now = old;
    if (in_access) {
      bool conflicts = false;
      now = next_stamps(old, access, me, base, &conflicts);
      const unsigned lowest = (unsigned)__builtin_ctz(bytes);
      if (conflicts && lowest < hit) {
        hit = lowest;
        *before = old;
      }
    }
    if (now.writer) {
      uniform &= !writer || writer == now.writer;
      writer = now.writer;
      written |= bytes;
    }
    if (now.reader) {
      uniform &= !reader || reader == now.reader;
      reader = now.reader;
      read |= bytes;
    }
  }
  if (uniform) {
    g = GranuleStamps{writer, reader, written, read};
    return hit;
  }
  // The bytes' stamps differ: each byte gets its own, from what the granule recorded before.
  std::array<AccessStamps, kGranule> split;
  for (unsigned i = 0; i < kGranule; i++) split[i] = AccessStamps{(wm >> i) & 1 ? w : 0, (rm >> i) & 1 ? r : 0};
  AccessStamps ignored;
  record_bytes(&split[first], count, access, me, base, &ignored);  // conflicts were found above
  g = GranuleStamps{me | kSplit, (uint32_t)splits.size(), 0, 0};
  splits.push_back(split);
  return hit;
}

}  // namespace fo_emu
