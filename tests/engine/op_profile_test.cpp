#include <gtest/gtest.h>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <stdexcept>
#include <thread>

#include "umrflow/op_profile.h"

namespace umrflow {

namespace {
const OpProfile::Row* find(const std::vector<OpProfile::Row>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}
}  // namespace

// Ops are counted only while the profile lives, on every thread; an op's
// self time is its time less its callees', so the self times of everything
// add up to the outermost scope's total.
TEST(OpProfile, CountsCallsAndSplitsSelfFromTotal) {
  const torch::Tensor a = torch::randn({64, 64});
  torch::mm(a, a);  // before the profile: not counted
  std::vector<OpProfile::Row> rows;
  {
    OpProfile profile;
    {
      RECORD_USER_SCOPE("outer");
      for (int i = 0; i < 3; ++i) torch::mm(a, a);
      std::thread other([&] { torch::mm(a, a); });  // another thread, no enclosing scope
      other.join();
    }
    rows = profile.rows();
  }
  torch::mm(a, a);  // after: not counted
  const auto* mm = find(rows, "aten::mm");
  const auto* outer = find(rows, "outer");
  ASSERT_NE(mm, nullptr);
  ASSERT_NE(outer, nullptr);
  EXPECT_EQ(mm->calls, 4);
  EXPECT_EQ(outer->calls, 1);
  EXPECT_LE(mm->self_s, mm->total_s + 1e-12);
  // Everything except the other thread's calls ran inside "outer".
  double self_sum = 0, other_thread = 0;
  for (const auto& r : rows) self_sum += r.self_s;
  for (const auto& r : rows) EXPECT_GE(r.self_s, 0.0) << r.name;
  other_thread = self_sum - outer->total_s;
  EXPECT_GE(other_thread, -1e-9);
  EXPECT_LT(other_thread, mm->total_s);  // one of the four mm calls, and its callees, at most
  EXPECT_LT(outer->self_s, outer->total_s);
  for (std::size_t i = 1; i < rows.size(); ++i) EXPECT_GE(rows[i - 1].self_s, rows[i].self_s);  // by self time
}

// A scope opened inside a scope of the same name adds its calls and self time
// but not its total again (the outer call's total holds it).
TEST(OpProfile, RecursiveScopeCountsItsTotalOnce) {
  const torch::Tensor a = torch::randn({32, 32});
  OpProfile profile;
  {
    RECORD_USER_SCOPE("level");
    torch::mm(a, a);
    {
      RECORD_USER_SCOPE("level");
      torch::mm(a, a);
    }
  }
  const auto rows = profile.rows();
  const auto* level = find(rows, "level");
  ASSERT_NE(level, nullptr);
  EXPECT_EQ(level->calls, 2);
  double all_self = 0;
  for (const auto& r : rows) all_self += r.self_s;
  EXPECT_NEAR(level->total_s, all_self, 1e-9);
}

// One profile at a time: a second says so instead of mixing the two.
TEST(OpProfile, SecondProfileIsRefused) {
  OpProfile first;
  EXPECT_THROW(OpProfile second, std::logic_error);
}

// The table gives calls, self and total per step and each row's share of all
// self time.
TEST(OpProfile, TableIsPerStepWithShares) {
  const std::vector<OpProfile::Row> rows = {{"aten::conv", 6, 0.3, 0.5}, {"aten::add", 4, 0.1, 0.1}};
  const std::string table = op_profile_table(rows, 1, 2);
  EXPECT_NE(table.find("| aten::conv | 3.0 | 150.00 | 75.0 | 250.00 |"), std::string::npos) << table;
  EXPECT_EQ(table.find("aten::add"), std::string::npos) << "only the top row";
}

}  // namespace umrflow
