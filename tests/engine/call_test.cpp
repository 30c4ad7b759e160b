#include <gtest/gtest.h>

#include "instance.h"

namespace umrflow {

namespace {

/// Output `y`: every voxel holds the mean of the window it was given (so the
/// blend shows which windows covered it); `seen` counts the calls; `feature`
/// is a non-spatial output that the window blend must leave out.
struct WindowMeanImpl : torch::nn::Module {
  torch::nn::BatchNorm1d bn{register_module("bn", torch::nn::BatchNorm1d(1))};
};
TORCH_MODULE(WindowMean);

class WindowMeanNode final : public ModuleNode {
 public:
  torch::nn::Module& module() override { return *net_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    ++calls;
    training_seen = net_->is_training();
    grad_seen = torch::GradMode::is_enabled();
    const torch::Tensor& x = in.at(0).at("image");
    Packet out;
    out.tensors["y"] = x.mean({2}, true).expand_as(x).clone();
    out.tensors["feature"] = x.sum().view({1});
    return out;
  }
  int calls = 0;
  bool training_seen = true, grad_seen = true;

 private:
  WindowMean net_;
};

/// Doubles the `y` it is given, in place of a second module in a chain.
class DoublerNode final : public ModuleNode {
 public:
  torch::nn::Module& module() override { return *net_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    ++calls;
    Packet out;
    out.tensors["y"] = in.at(0).at("y") * 2;
    return out;
  }
  int calls = 0;

 private:
  WindowMean net_;
};

Params call_params(std::vector<std::int64_t> window, double overlap, bool grad = true, bool eval = false, std::int64_t batch = 1) {
  Params p;
  p.set("window_batch", batch, {});
  p.set("module", std::string("m"), {});
  p.set("grad", grad, {});
  p.set("eval", eval, {});
  p.set("window", window, {});
  p.set("overlap", overlap, {});
  return p;
}

}  // namespace

// Along an axis of 10 with window 4 and overlap 0.5, the windows start at 0, 2,
// 4 and 6 (MONAI's dense patch slices) and outputs are averaged uniformly.
TEST(Call, SlidingWindowPositionsAndUniformBlend) {
  WindowMeanNode m;
  m.module().train();
  const torch::Tensor x = torch::arange(10, torch::kFloat32).view({1, 1, 10});
  Packet in;
  in.tensors["image"] = x;
  Context ctx(1, 0, 0, "c", false);
  Packet out = call_module(m, {}, call_params({4}, 0.5), {in}, ctx);
  EXPECT_EQ(m.calls, 4);
  EXPECT_EQ(out.tensors.count("feature"), 0u);
  // Brute force: voxel i averages the means of the windows [s, s+4) holding it.
  for (int i = 0; i < 10; ++i) {
    double sum = 0;
    int n = 0;
    for (int s : {0, 2, 4, 6})
      if (i >= s && i < s + 4) {
        sum += s + 1.5;
        ++n;
      }
    EXPECT_NEAR(out.at("y")[0][0][i].item<double>(), sum / n, 1e-6) << "voxel " << i;
  }
}

// `window_batch` runs several windows per call, each input row followed by
// its windows, and blends to what one window per call gives.
TEST(Call, WindowBatchEqualsOneWindowAtATime) {
  Packet in;
  in.tensors["image"] = torch::arange(3 * 10, torch::kFloat32).view({3, 1, 10}) * torch::tensor({1.0f, -2.0f, 0.5f}).view({3, 1, 1});
  Context ctx(1, 0, 0, "c", false);
  WindowMeanNode one, three;
  const Packet a = call_module(one, {}, call_params({4}, 0.5), {in}, ctx);
  const Packet b = call_module(three, {}, call_params({4}, 0.5, true, false, 3), {in}, ctx);
  EXPECT_EQ(one.calls, 4);
  EXPECT_EQ(three.calls, 2);  // windows 0, 2, 4 together, then 6
  EXPECT_TRUE(torch::allclose(a.at("y"), b.at("y"), 1e-6, 1e-6));
}

// BraTS arithmetic: 240 with 128 and overlap 0.5 gives 3 windows, 155 gives 2;
// an input smaller than the window is zero-padded and cropped back.
TEST(Call, SlidingWindowCountsAndPadding) {
  WindowMeanNode m;
  Packet in;
  in.tensors["image"] = torch::ones({1, 1, 240, 155});
  Context ctx(1, 0, 0, "c", false);
  call_module(m, {}, call_params({128, 128}, 0.5), {in}, ctx);
  EXPECT_EQ(m.calls, 6);
  WindowMeanNode small;
  in.tensors["image"] = torch::ones({1, 1, 6});
  Packet out = call_module(small, {}, call_params({10}, 0.5), {in}, ctx);
  EXPECT_EQ(small.calls, 1);
  ASSERT_EQ(out.at("y").size(2), 6);
  EXPECT_NEAR(out.at("y")[0][0][0].item<double>(), 0.6, 1e-6);  // mean over 6 ones and 4 padded zeros
}

// `eval` runs the module in eval mode and restores training mode after;
// `grad: false` turns autograd off for the call only.
TEST(Call, EvalAndGradSettingsAreScoped) {
  WindowMeanNode m;
  m.module().train();
  Packet in;
  in.tensors["image"] = torch::ones({1, 1, 4});
  Context ctx(1, 0, 0, "c", true);
  call_module(m, {}, call_params({}, 0.5, false, true), {in}, ctx);
  EXPECT_FALSE(m.training_seen);
  EXPECT_FALSE(m.grad_seen);
  EXPECT_TRUE(m.module().is_training());
  EXPECT_TRUE(torch::GradMode::is_enabled());
  call_module(m, {}, call_params({}, 0.5), {in}, ctx);
  EXPECT_TRUE(m.training_seen);
  EXPECT_TRUE(m.grad_seen);
}

// A chain (`then`) runs inside every window: the blended output of module then
// doubler is twice the module's own blended output, and both ran per window.
TEST(Call, ChainRunsPerWindow) {
  WindowMeanNode m, alone;
  DoublerNode twice;
  const torch::Tensor x = torch::arange(10, torch::kFloat32).view({1, 1, 10});
  Packet in;
  in.tensors["image"] = x;
  Context ctx(1, 0, 0, "c", false);
  const Packet single = call_module(alone, {}, call_params({4}, 0.5), {in}, ctx);
  const Packet chained = call_module(m, {{&twice, 1}}, call_params({4}, 0.5), {in}, ctx);
  EXPECT_EQ(twice.calls, 4);
  EXPECT_EQ(chained.tensors.count("feature"), 0u);
  EXPECT_TRUE(torch::allclose(chained.at("y"), 2 * single.at("y")));
}

}  // namespace umrflow
