#include <gtest/gtest.h>

#include <cmath>

#include "nodes/node_harness.h"
#include "test_util.h"
#include "umrflow/module.h"

namespace umrflow {

// A flip with p = 1 flips every tensor along the listed axes; p = 0 changes nothing.
TEST(TensorNodes, RandomFlipExtremes) {
  Packet s;
  s.tensors["a"] = torch::arange(8.0).view({1, 2, 4});
  s.tensors["b"] = torch::arange(8.0).view({1, 2, 4}) * 2;
  Packet orig = s;
  auto always = test::make_node("tensor.random_flip", "{axes: [2], p: 1.0}");
  Context ctx(1, 0, 0, "f", true);
  dynamic_cast<SampleNode*>(always.get())->apply(s, ctx);
  EXPECT_TRUE(torch::equal(s.at("a"), orig.at("a").flip({2})));
  EXPECT_TRUE(torch::equal(s.at("b"), orig.at("b").flip({2})));
  auto never = test::make_node("tensor.random_flip", "{axes: [1, 2], p: 0.0}");
  Packet t = orig;
  dynamic_cast<SampleNode*>(never.get())->apply(t, ctx);
  EXPECT_TRUE(torch::equal(t.at("a"), orig.at("a")));
}

// tensor.copy stores a copy that later changes to the source leave alone; a
// missing source names the key.
TEST(TensorNodes, CopyKeepsTheUnperturbedTensor) {
  auto copy = test::make_node("tensor.copy", "{from: image, to: target}");
  Packet s = test::sample({{"image", torch::arange(6.0).view({1, 2, 3})}});
  s = test::apply(*copy, s);
  s.at("image").zero_();
  EXPECT_TRUE(torch::equal(s.at("target"), torch::arange(6.0).view({1, 2, 3})));
  auto missing = test::make_node("tensor.copy", "{from: nothing}");
  try {
    test::apply(*missing, s);
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("nothing"), std::string::npos) << e.what();
  }
}

}  // namespace umrflow
