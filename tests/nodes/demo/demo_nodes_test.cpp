#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/module.h"

namespace umrflow {

namespace {
std::unique_ptr<Node> make(const Registry& r, const std::string& type, const std::string& yaml) {
  Diagnostics d;
  const NodeSpec* spec = r.find(type);
  Params p = parse_params(parse_yaml(yaml, "p"), spec->params, {}, type, d);
  EXPECT_TRUE(d.empty()) << d.str();
  return spec->create(p);
}
}  // namespace

// The synthetic target is the closed-form channel mix sum_c (c+1)/C * image_c.
TEST(DemoNodes, SyntheticTargetIsTheChannelMix) {
  Registry r = test::builtin_registry();
  auto node = make(r, "synthetic.tensors", "{count: 3, shape: [3, 2, 2]}");
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

// A flip with p = 1 flips every tensor along the listed axes; p = 0 changes nothing.
TEST(DemoNodes, RandomFlipExtremes) {
  Registry r = test::builtin_registry();
  Packet s;
  s.tensors["a"] = torch::arange(8.0).view({1, 2, 4});
  s.tensors["b"] = torch::arange(8.0).view({1, 2, 4}) * 2;
  Packet orig = s;
  auto always = make(r, "tensor.random_flip", "{axes: [2], p: 1.0}");
  Context ctx(1, 0, 0, "f", true);
  dynamic_cast<SampleNode*>(always.get())->apply(s, ctx);
  EXPECT_TRUE(torch::equal(s.at("a"), orig.at("a").flip({2})));
  EXPECT_TRUE(torch::equal(s.at("b"), orig.at("b").flip({2})));
  auto never = make(r, "tensor.random_flip", "{axes: [1, 2], p: 0.0}");
  Packet t = orig;
  dynamic_cast<SampleNode*>(never.get())->apply(t, ctx);
  EXPECT_TRUE(torch::equal(t.at("a"), orig.at("a")));
}

// channel_mix is a matrix product over axis 1, bias added per output channel.
TEST(DemoNodes, ChannelMixIsAPointwiseLinearMap) {
  Registry r = test::builtin_registry();
  auto node = make(r, "model.channel_mix", "{in_channels: 3, out_channels: 2}");
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

// mse is the mean of squared differences; sum weights its terms.
TEST(DemoNodes, Losses) {
  Registry r = test::builtin_registry();
  auto mse = make(r, "loss.mse", "{}");
  Packet pred, target;
  pred.tensors["pred"] = torch::tensor({1.0, 2.0, 3.0});
  target.tensors["target"] = torch::tensor({1.0, 0.0, 6.0});
  Context ctx(1, 0, 0, "l", true);
  auto l = dynamic_cast<StepNode*>(mse.get())->run({pred, target}, ctx).at("loss");
  EXPECT_NEAR(l.item<double>(), (0 + 4 + 9) / 3.0, 1e-6);
  auto sum = make(r, "loss.sum", "{weights: [1.0, 0.2]}");
  Packet a, b;
  a.tensors["loss"] = torch::tensor(2.0);
  b.tensors["loss"] = torch::tensor(10.0);
  EXPECT_NEAR(dynamic_cast<StepNode*>(sum.get())->run({a, b}, ctx).at("loss").item<double>(), 4.0, 1e-6);
  EXPECT_THROW(dynamic_cast<StepNode*>(sum.get())->run({a}, ctx), std::runtime_error);
}

// bce is the closed-form mean of -w t log s(x) - (1 - t) log(1 - s(x)); shapes must agree.
TEST(DemoNodes, BinaryCrossEntropy) {
  Registry r = test::builtin_registry();
  const std::vector<double> x = {0.0, 2.0, -1.0, 3.5}, t = {1.0, 0.0, 0.25, 1.0};
  auto expected = [&](double w) {
    double total = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double s = 1.0 / (1.0 + std::exp(-x[i]));
      total += -w * t[i] * std::log(s) - (1 - t[i]) * std::log(1 - s);
    }
    return total / static_cast<double>(x.size());
  };
  Packet pred, target;
  pred.tensors["pred"] = torch::tensor(x, torch::kFloat64).reshape({1, 2, 2});
  target.tensors["target"] = torch::tensor(t, torch::kFloat64).reshape({1, 2, 2});
  Context ctx(1, 0, 0, "l", true);
  for (double w : {1.0, 3.0}) {
    auto bce = make(r, "loss.bce", "{pos_weight: " + std::to_string(w) + "}");
    EXPECT_NEAR(dynamic_cast<StepNode*>(bce.get())->run({pred, target}, ctx).at("loss").item<double>(), expected(w), 1e-9);
  }
  target.tensors["target"] = torch::zeros({1, 4});
  auto bce = make(r, "loss.bce", "{}");
  EXPECT_THROW(dynamic_cast<StepNode*>(bce.get())->run({pred, target}, ctx), std::runtime_error);
}

}  // namespace umrflow
