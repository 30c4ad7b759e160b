#include <gtest/gtest.h>

#include <cmath>

#include "nodes/node_harness.h"
#include "test_util.h"
#include "umrflow/module.h"

namespace umrflow {

// channel_mix is a matrix product over axis 1, bias added per output channel.
TEST(ChannelMix, ChannelMixIsAPointwiseLinearMap) {
  auto node = test::make_node("model.channel_mix", "{in_channels: 3, out_channels: 2}");
  auto* m = dynamic_cast<ModuleNode*>(node.get());
  ASSERT_NE(m, nullptr);
  auto params = m->module().named_parameters();
  torch::NoGradGuard g;
  params["bias"].fill_(0.5);
  Packet in;
  in.tensors["image"] = torch::randn({2, 3, 4, 5});
  Context ctx(1, 0, 0, "m", false);
  auto out = m->forward({in}, ctx).at("pred");
  auto expected = torch::einsum("oc,bcxy->boxy", {params["weight"], in.at("image")}) + 0.5;
  EXPECT_TRUE(torch::allclose(out, expected, 1e-5, 1e-5));
  in.tensors["image"] = torch::randn({2, 4, 4});
  EXPECT_THROW(m->forward({in}, ctx), std::runtime_error);
}

}  // namespace umrflow
