#include <gtest/gtest.h>

#include "umrflow/diagnostics.h"

namespace umrflow {

// A diagnostic prints as file:line:column: message.
TEST(Diagnostics, FormatsLikeACompiler) {
  Diagnostic d{{"g.yaml", 3, 7}, "bad"};
  EXPECT_EQ(d.str(), "g.yaml:3:7: bad");
  EXPECT_EQ((Location{"g.yaml", 0, 0}.str()), "g.yaml");
}

// All diagnostics are kept in order and thrown together.
TEST(Diagnostics, ThrowsAllAtOnce) {
  Diagnostics list;
  list.error({"a", 1, 1}, "first");
  list.error({"a", 2, 1}, "second");
  try {
    list.throw_if_any();
    FAIL() << "expected GraphError";
  } catch (const GraphError& e) {
    ASSERT_EQ(e.diagnostics().size(), 2u);
    EXPECT_EQ(std::string(e.what()), "a:1:1: first\na:2:1: second\n");
  }
}

// Nearest names rank plausible typos first and leave out unrelated names.
TEST(Diagnostics, NearestNamesFindTypos) {
  const std::vector<std::string> names = {"tensor.gaussian_noise", "tensor.random_flip", "loss.mse", "batch"};
  auto near = nearest_names("tensor.gausian_noise", names);
  ASSERT_FALSE(near.empty());
  EXPECT_EQ(near.front(), "tensor.gaussian_noise");
  EXPECT_TRUE(nearest_names("zzzzzzzz", names).empty());
  EXPECT_EQ(did_you_mean("bacth", names), " (did you mean 'batch'?)");
}

// A node error names the node, its type and the sample.
TEST(Diagnostics, NodeErrorNamesNodeAndSample) {
  NodeError e("crop", "volume.crop", "case_3", "too small");
  EXPECT_EQ(std::string(e.what()), "node 'crop' (volume.crop) failed on sample case_3: too small");
}

}  // namespace umrflow
