#include <gtest/gtest.h>

#include "umrflow/autocast.h"
#include <torch/torch.h>

#include "instance.h"
#include "precision.h"
#include "test_paths.h"
#include "test_util.h"
#include "umrflow/doc.h"

namespace umrflow {

namespace {

const std::string kStage1 = std::string(UMRFLOW_SOURCE_DIR) + "/graphs/phantoms/stage1.yaml";

Graph stage1(const Registry& r, const std::vector<std::string>& extra) {
  std::vector<std::string> o = {"data.cases.root=" + test::phantom_root(), "data.cases.split=" + test::phantom_root() + "/split.yaml",
                                "modules.net.widths=[4, 8, 8, 8]"};
  o.insert(o.end(), extra.begin(), extra.end());
  return build_graph(load_graph_doc(kStage1, o), kStage1, r);
}

Packet make_batch() {
  torch::manual_seed(5);
  Packet p;
  p.tensors["image"] = torch::randn({2, 4, 16, 16, 16});
  p.tensors["target"] = torch::relu(p.tensors["image"] + 0.5 * torch::randn({2, 4, 16, 16, 16}));
  p.samples = {{0, "a", {}}, {1, "b", {}}};
  return p;
}

/// One training step's objective and the gradients of every parameter.
struct Step {
  double loss;
  std::vector<torch::Tensor> grads;
};
Step step(const Instance& inst, Packet batch, bool autocast, bool channels_last) {
  inst.set_training(true);
  if (channels_last)
    for (auto& [k, t] : batch.tensors) t = umrflow::channels_last(t);
  torch::Tensor loss;
  {
    const AutocastScope scope(autocast, torch::kCPU);
    loss = inst.run_step(batch, 0, 0, true).at("total").at("loss");
  }
  loss.backward();
  Step s{loss.item<double>(), {}};
  for (const auto& [name, t] : inst.weights())
    if (t.grad().defined()) s.grads.push_back(t.grad().clone());
  return s;
}

double cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return (a * b).sum().item<double>() / (a.norm().item<double>() * b.norm().item<double>() + 1e-30);
}

}  // namespace

// The scope switches the CPU's bf16 autocast on for the forward (a Conv3d
// computes in bf16), a Pause switches it off (the backward of a group), and
// leaving the scope restores fp32.
TEST(Precision, AutocastScopeOnTheCpu) {
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(2, 3, 3));
  const torch::Tensor x = torch::randn({1, 2, 5, 5, 5});
  {
    const AutocastScope scope(true, torch::kCPU);
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kBFloat16);
    {
      const AutocastScope::Pause pause;
      EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
    }
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(autocast::enabled(at::kCPU));
  EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
  {
    const AutocastScope off(false, torch::kCPU);
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
  }
}

// A stage-1 step (U-Net reconstruction, SSIM + L1) with bf16 autocast stays
// within bf16's precision of the fp32 step: loss within 1 %, the gradient of
// all parameters together pointing the same way (cosine > 0.9), gradients fp32.
TEST(Precision, Bf16AutocastStepIsCloseToFp32) {
  const Registry r = test::builtin_registry();
  const Graph g = stage1(r, {});
  const Instance fp32(g, torch::kCPU), bf16(g, torch::kCPU);  // same seed: the same initial weights
  const Step a = step(fp32, make_batch(), false, false), b = step(bf16, make_batch(), true, false);
  EXPECT_NEAR(b.loss, a.loss, 0.01 * std::abs(a.loss));  // measured 0.2 %
  EXPECT_NE(b.loss, a.loss);  // autocast did change the arithmetic
  ASSERT_EQ(a.grads.size(), b.grads.size());
  std::vector<torch::Tensor> flat_a, flat_b;
  for (std::size_t i = 0; i < a.grads.size(); ++i) {
    EXPECT_EQ(b.grads[i].scalar_type(), torch::kFloat32);
    flat_a.push_back(a.grads[i].flatten());
    flat_b.push_back(b.grads[i].flatten());
  }
  // Single small tensors (a BatchNorm's shift before another BatchNorm) have
  // gradients near zero that bf16 rounding turns; the step as a whole agrees.
  const double c = cosine(torch::cat(flat_a), torch::cat(flat_b));
  std::cout << "bf16 vs fp32: loss " << b.loss << " vs " << a.loss << ", gradient cosine " << c << "\n";
  EXPECT_GT(c, 0.9);  // measured 0.96 at widths 4-8 on 16^3 (BatchNorm over few values amplifies rounding)
}

// execution.channels_last stores the Conv3d weights channels-last and gives
// the fp32 step's loss and gradients within float rounding (same values,
// another memory order).
TEST(Precision, ChannelsLastStepEqualsContiguous) {
  const Registry r = test::builtin_registry();
  const Graph plain = stage1(r, {}), last = stage1(r, {"execution.channels_last=true"});
  const Instance a_inst(plain, torch::kCPU), b_inst(last, torch::kCPU);
  int converted = 0;
  for (const auto& [name, t] : b_inst.weights())
    if (t.dim() == 5) {
      EXPECT_TRUE(t.is_contiguous(at::MemoryFormat::ChannelsLast3d)) << name;
      ++converted;
    }
  EXPECT_GT(converted, 8);
  const Step a = step(a_inst, make_batch(), false, false), b = step(b_inst, make_batch(), false, true);
  EXPECT_NEAR(b.loss, a.loss, 1e-5 * std::abs(a.loss));
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (std::size_t i = 0; i < a.grads.size(); ++i)
    EXPECT_LE((a.grads[i] - b.grads[i]).abs().max().item<double>(), 1e-4 * a.grads[i].abs().max().item<double>() + 1e-9) << i;
}

}  // namespace umrflow
