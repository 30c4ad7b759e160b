#include "umrflow/random.h"

namespace umrflow {

std::uint64_t hash_name(const std::string& name) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

namespace {
std::uint64_t mix(std::uint64_t state, std::uint64_t value) {
  std::uint64_t z = state + 0x9e3779b97f4a7c15ull + value;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

std::uint64_t derive_seed(std::uint64_t run_seed, std::int64_t epoch, std::int64_t index, const std::string& node_id) {
  std::uint64_t s = mix(0, run_seed);
  s = mix(s, static_cast<std::uint64_t>(epoch));
  s = mix(s, static_cast<std::uint64_t>(index));
  return mix(s, hash_name(node_id));
}

}  // namespace umrflow
