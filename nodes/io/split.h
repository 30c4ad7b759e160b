// split.h: seeded train/val/test splits of case ids, kept as YAML files.
//
//   # umrflow split: 369 cases, seed 2025
//   seed: 2025
//   train: [BraTS20_Training_001, ...]
//   val: [...]
//   test: [...]
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace umrflow::io {

struct Split {
  std::uint64_t seed = 0;
  std::map<std::string, std::vector<std::string>> subsets;  // train, val, test
};

/// Shuffles the sorted ids with `seed`, then takes round(test * N) for test,
/// round(val * N) for val and the rest for train; each list is sorted. An id
/// listed twice is an error (std::invalid_argument naming it).
Split make_split(std::vector<std::string> ids, double val, double test, std::uint64_t seed);

/// Writes a split as YAML (atomically) / reads one. Reading checks that the
/// subsets do not overlap and names the file and the id otherwise.
void write_split(const std::string& path, const Split& split, const std::string& comment);
Split read_split(const std::string& path);

/// Keeps the ids of `subset` ("all" keeps everything) in the order of `ids`.
/// Throws std::runtime_error naming the split file and the first ids it lists
/// that are not among `ids`.
std::vector<std::string> select_subset(const std::vector<std::string>& ids, const Split& split, const std::string& subset,
                                       const std::string& split_file);

}  // namespace umrflow::io
