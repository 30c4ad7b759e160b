#include "io/split.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <stdexcept>

#include "umrflow/doc.h"
#include "umrflow/files.h"

namespace umrflow::io {

Split make_split(std::vector<std::string> ids, double val, double test, std::uint64_t seed) {
  if (val < 0 || test < 0 || val + test > 1) throw std::invalid_argument("val and test fractions must be >= 0 and sum to at most 1");
  std::sort(ids.begin(), ids.end());
  const auto twice = std::adjacent_find(ids.begin(), ids.end());
  if (twice != ids.end()) throw std::invalid_argument("case id '" + *twice + "' is listed twice; each case may be listed once");
  std::mt19937_64 rng(seed);
  // Fisher-Yates with our own draws: std::shuffle's use of the engine is not fixed across standard libraries.
  for (std::size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[rng() % i]);
  const auto n = ids.size();
  const auto n_test = static_cast<std::size_t>(std::llround(test * n));
  const auto n_val = std::min(n - n_test, static_cast<std::size_t>(std::llround(val * n)));
  Split s;
  s.seed = seed;
  s.subsets["test"].assign(ids.begin(), ids.begin() + n_test);
  s.subsets["val"].assign(ids.begin() + n_test, ids.begin() + n_test + n_val);
  s.subsets["train"].assign(ids.begin() + n_test + n_val, ids.end());
  for (auto& [name, list] : s.subsets) std::sort(list.begin(), list.end());
  return s;
}

void write_split(const std::string& path, const Split& split, const std::string& comment) {
  std::string text = "# " + comment + "\nseed: " + std::to_string(split.seed) + "\n";
  for (const char* name : {"train", "val", "test"}) {
    text += std::string(name) + ":";
    auto it = split.subsets.find(name);
    if (it == split.subsets.end() || it->second.empty()) {
      text += " []\n";
      continue;
    }
    text += "\n";
    for (const auto& id : it->second) text += "  - " + id + "\n";
  }
  write_file_atomically(path, text);
}

Split read_split(const std::string& path) {
  Doc d = load_yaml_file(path);
  Diagnostics diags;
  Split s;
  if (!d.is_map()) {
    diags.error(d.where(), "a split file is a map with train, val and test lists");
    diags.throw_if_any();
  }
  std::map<std::string, std::string> owner;
  for (const auto& e : d.entries()) {
    if (e.key == "seed") {
      s.seed = std::strtoull(e.value.text().c_str(), nullptr, 10);
      continue;
    }
    if (e.key != "train" && e.key != "val" && e.key != "test") {
      diags.error(e.key_where, "unknown key '" + e.key + "' (a split has seed, train, val, test)");
      continue;
    }
    if (!e.value.is_sequence()) {
      diags.error(e.value.where(), "'" + e.key + "' is a list of case ids");
      continue;
    }
    for (const auto& item : e.value.items()) {
      auto [it, fresh] = owner.emplace(item.text(), e.key);
      if (!fresh) diags.error(item.where(), "case '" + item.text() + "' is in both '" + it->second + "' and '" + e.key + "'");
      s.subsets[e.key].push_back(item.text());
    }
  }
  diags.throw_if_any();
  return s;
}

std::vector<std::string> select_subset(const std::vector<std::string>& ids, const Split& split, const std::string& subset,
                                       const std::string& split_file) {
  if (subset == "all") return ids;
  auto it = split.subsets.find(subset);
  const std::vector<std::string> wanted = it == split.subsets.end() ? std::vector<std::string>{} : it->second;
  const std::set<std::string> have(ids.begin(), ids.end());
  std::vector<std::string> missing;
  for (const auto& w : wanted)
    if (!have.count(w)) missing.push_back(w);
  if (!missing.empty())
    throw std::runtime_error("split '" + split_file + "' lists " + std::to_string(missing.size()) + " " + subset +
                             " case(s) that are not in the data, e.g. '" + missing.front() + "'");
  const std::set<std::string> keep(wanted.begin(), wanted.end());
  std::vector<std::string> out;
  for (const auto& id : ids)
    if (keep.count(id)) out.push_back(id);
  return out;
}

}  // namespace umrflow::io
