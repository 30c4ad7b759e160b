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

}  // namespace umrflow
