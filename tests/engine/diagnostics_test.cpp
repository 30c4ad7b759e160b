#include <gtest/gtest.h>
#include <torch/torch.h>

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

// libtorch's own errors lose their C++ backtrace: a failed check keeps its
// message, and an allocation the machine cannot give (4 PiB) keeps the bytes
// asked for and gets a hint; a message without either is left as it is.
TEST(Diagnostics, LibtorchErrorsReadWithoutBacktrace) {
  std::string check, memory;
  try {
    (void)torch::ones({2, 3}).view({4});
  } catch (const std::exception& e) {
    check = e.what();
  }
  try {
    (void)torch::empty({std::int64_t{1} << 50});
  } catch (const std::exception& e) {
    memory = e.what();
  }
  const std::string readable_check = readable_error(check);
  EXPECT_EQ(readable_check.find("frame #"), std::string::npos) << readable_check;
  EXPECT_EQ(readable_check.find('\n'), std::string::npos) << readable_check;
  EXPECT_NE(readable_check.find("shape '[4]' is invalid for input of size 6"), std::string::npos) << readable_check;
  EXPECT_EQ(readable_check.find("out of memory"), std::string::npos) << readable_check;
  ASSERT_FALSE(memory.empty()) << "a 4 PiB tensor was allocated";
  NodeError e("seg", "call", "case_1", memory);
  const std::string text = e.what();
  EXPECT_EQ(text.find("frame #"), std::string::npos) << text;
  EXPECT_NE(text.find(std::to_string(std::int64_t{4} << 50)), std::string::npos) << text;  // the bytes asked for
  EXPECT_NE(text.find("a smaller batch, crop or sliding window needs less memory"), std::string::npos) << text;
  EXPECT_EQ(readable_error(text), text);  // the hint is given once
  EXPECT_EQ(readable_error("bad value\n"), "bad value");
}

}  // namespace umrflow
