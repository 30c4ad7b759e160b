#include <gtest/gtest.h>

#include <cmath>

#include "nodes/node_harness.h"
#include "test_util.h"
#include "umrflow/module.h"

namespace umrflow {

// mse is the mean of squared differences; sum weights its terms.
TEST(LossNodes, Losses) {
  auto mse = test::make_node("loss.mse", "{}");
  Packet pred, target;
  pred.tensors["pred"] = torch::tensor({1.0, 2.0, 3.0});
  target.tensors["target"] = torch::tensor({1.0, 0.0, 6.0});
  Context ctx(1, 0, 0, "l", true);
  auto l = dynamic_cast<StepNode*>(mse.get())->run({pred, target}, ctx).at("loss");
  EXPECT_NEAR(l.item<double>(), (0 + 4 + 9) / 3.0, 1e-6);
  auto sum = test::make_node("loss.sum", "{weights: [1.0, 0.2]}");
  Packet a, b;
  a.tensors["loss"] = torch::tensor(2.0);
  b.tensors["loss"] = torch::tensor(10.0);
  EXPECT_NEAR(dynamic_cast<StepNode*>(sum.get())->run({a, b}, ctx).at("loss").item<double>(), 4.0, 1e-6);
  EXPECT_THROW(dynamic_cast<StepNode*>(sum.get())->run({a}, ctx), std::runtime_error);
}

// bce is the closed-form mean of -w t log s(x) - (1 - t) log(1 - s(x)); shapes must agree.
TEST(LossNodes, BinaryCrossEntropy) {
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
    auto bce = test::make_node("loss.bce", "{pos_weight: " + std::to_string(w) + "}");
    EXPECT_NEAR(dynamic_cast<StepNode*>(bce.get())->run({pred, target}, ctx).at("loss").item<double>(), expected(w), 1e-9);
  }
  target.tensors["target"] = torch::zeros({1, 4});
  auto bce = test::make_node("loss.bce", "{}");
  EXPECT_THROW(dynamic_cast<StepNode*>(bce.get())->run({pred, target}, ctx), std::runtime_error);
}

// cross_entropy equals -log softmax at each counted pixel's class (label - offset), averaged over counted pixels, labels
// of B rows tiled over k*B; the soft target is -sum softmax(ref) log softmax(pred) per pixel; bad labels are refused.
TEST(LossNodes, CrossEntropy) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({4, 3, 2, 3}, torch::kFloat64);  // two subsets of two images
  const torch::Tensor labels = torch::tensor({0, 1, 2, 3, 3, 0, 2, 2, 1, 0, 0, 1}, torch::kLong).view({2, 1, 2, 3});
  double total = 0;
  int counted = 0;
  for (int n = 0; n < 4; ++n)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x) {
        const std::int64_t l = labels[n % 2][0][y][x].item<std::int64_t>();
        if (l == 0) continue;
        double z = 0;
        for (int c = 0; c < 3; ++c) z += std::exp(logits[n][c][y][x].item<double>());
        total += std::log(z) - logits[n][l - 1][y][x].item<double>();
        ++counted;
      }
  Packet pred, target;
  pred.tensors["pred"] = logits;
  target.tensors["target"] = labels;
  Context ctx(1, 0, 0, "l", true);
  auto ce = test::make_node("loss.cross_entropy", "{}");
  auto& step = dynamic_cast<StepNode&>(*ce);
  EXPECT_NEAR(step.run({pred, target}, ctx).at("loss").item<double>(), total / counted, 1e-12);
  // Soft targets: a detached reference's softmax.
  const torch::Tensor ref = torch::randn({4, 3, 2, 3}, torch::kFloat64);
  double soft = 0;
  for (int n = 0; n < 4; ++n)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x) {
        double zp = 0, zq = 0;
        for (int c = 0; c < 3; ++c) zp += std::exp(logits[n][c][y][x].item<double>()), zq += std::exp(ref[n][c][y][x].item<double>());
        for (int c = 0; c < 3; ++c)
          soft -= std::exp(ref[n][c][y][x].item<double>()) / zq * (logits[n][c][y][x].item<double>() - std::log(zp));
      }
  Packet reference;
  reference.tensors["target"] = ref;
  auto consistency = test::make_node("loss.cross_entropy", "{target: softmax_detached}");
  EXPECT_NEAR(dynamic_cast<StepNode&>(*consistency).run({pred, reference}, ctx).at("loss").item<double>(), soft / 24, 1e-12);
  // Every pixel ignored: zero, still differentiable.
  Packet none;
  none.tensors["target"] = torch::zeros({2, 1, 2, 3}, torch::kLong);
  pred.tensors["pred"] = logits.clone().requires_grad_(true);
  const torch::Tensor zero = step.run({pred, none}, ctx).at("loss");
  EXPECT_EQ(zero.item<double>(), 0.0);
  EXPECT_TRUE(zero.requires_grad());
  // A label beyond the classes, a fractional label and a size mismatch are refused.
  Packet bad;
  bad.tensors["target"] = labels.clone();
  bad.tensors["target"][0][0][0][0] = 4;
  EXPECT_THROW(step.run({pred, bad}, ctx), std::runtime_error);
  bad.tensors["target"] = labels.to(torch::kFloat32) + 0.5;
  EXPECT_THROW(step.run({pred, bad}, ctx), std::runtime_error);
  bad.tensors["target"] = torch::ones({2, 1, 3, 3}, torch::kLong);
  EXPECT_THROW(step.run({pred, bad}, ctx), std::runtime_error);
}

}  // namespace umrflow
