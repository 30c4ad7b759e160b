#include <gtest/gtest.h>

#include <set>

#include "io/split.h"
#include "test_util.h"

namespace umrflow {

namespace {
std::vector<std::string> ids(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("case_" + std::to_string(1000 + i));
  return out;
}
}  // namespace

// A split has the requested sizes, covers every id exactly once, and depends
// only on the seed and the set of ids (not their order).
TEST(Split, SizesCoverageAndSeed) {
  auto s = io::make_split(ids(369), 17.0 / 369, 37.0 / 369, 2025);
  EXPECT_EQ(s.subsets["train"].size(), 315u);
  EXPECT_EQ(s.subsets["val"].size(), 17u);
  EXPECT_EQ(s.subsets["test"].size(), 37u);
  std::set<std::string> all;
  for (auto& [k, v] : s.subsets) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 369u);
  auto reversed = ids(369);
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_EQ(io::make_split(reversed, 17.0 / 369, 37.0 / 369, 2025).subsets, s.subsets);
  EXPECT_NE(io::make_split(ids(369), 17.0 / 369, 37.0 / 369, 2026).subsets["test"], s.subsets["test"]);
}

// Written and read back, a split is the same; overlaps and unknown ids are errors naming the file.
TEST(Split, FileRoundTripAndErrors) {
  test::TempDir dir;
  auto s = io::make_split(ids(20), 0.1, 0.2, 7);
  const std::string path = dir.path() + "/split.yaml";
  io::write_split(path, s, "test split");
  EXPECT_EQ(io::read_split(path).subsets, s.subsets);
  EXPECT_EQ(io::select_subset(ids(20), s, "test", path), s.subsets["test"]);
  try {
    io::select_subset(ids(5), s, "train", path);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  const std::string bad = dir.write("bad.yaml", "train: [a, b]\ntest: [b]\n");
  try {
    io::read_split(bad);
    FAIL();
  } catch (const GraphError& e) {
    EXPECT_EQ(e.diagnostics().items()[0].where.line, 2);
    EXPECT_NE(std::string(e.what()).find("'b' is in both 'train' and 'test'"), std::string::npos);
  }
}

}  // namespace umrflow
