// Hashes whose values are the same in every process and on every machine (unlike absl::Hash,
// which is seeded per process): for what must agree across a restart, such as a spool file's
// target key or the shard a series is sent on.
#ifndef RWEXPORT_LIB_COMMON_STABLE_HASH_H_
#define RWEXPORT_LIB_COMMON_STABLE_HASH_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace rwexport {

inline constexpr uint64_t kFnv1a64Offset = 14695981039346656037ull;

// FNV-1a 64 of `bytes`, continuing from `hash` (kFnv1a64Offset to start).
inline uint64_t Fnv1a64(absl::string_view bytes, uint64_t hash = kFnv1a64Offset) {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

// FNV-1a 64 of `bytes` with MurmurHash3's 64-bit finalizer, so that every bit of the result
// depends on every input bit (FNV's low bits alone depend only on the inputs' low bits): fit
// for `% n` with a small n.
inline uint64_t StableHash64(absl::string_view bytes) {
  uint64_t h = Fnv1a64(bytes);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace rwexport

#endif  // RWEXPORT_LIB_COMMON_STABLE_HASH_H_
