#include <gtest/gtest.h>

#include <cmath>

#include "nodes/node_harness.h"
#include "test_util.h"
#include "umrflow/module.h"

namespace umrflow {

// The synthetic target is the closed-form channel mix sum_c (c+1)/C * image_c.
TEST(SyntheticNodes, SyntheticTargetIsTheChannelMix) {
  auto node = test::make_node("synthetic.tensors", "{count: 3, shape: [3, 2, 2]}");
  auto* src = dynamic_cast<SourceNode*>(node.get());
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->size(), 3);
  Context ctx(1, 0, 2, "s", true);
  Packet p = src->load(2, ctx);
  const auto x = p.at("image");
  auto expected = x[0] * (1.0 / 3) + x[1] * (2.0 / 3) + x[2] * 1.0;
  EXPECT_TRUE(torch::allclose(p.at("target")[0], expected, 1e-6, 1e-6));
  Context again(1, 0, 2, "s", true);
  EXPECT_TRUE(torch::equal(src->load(2, again).at("image"), x));
}

}  // namespace umrflow
