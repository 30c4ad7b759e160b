#include <gtest/gtest.h>

#include <sstream>

#include <torch/torch.h>
#include <torch/version.h>

#include "optimizer.h"

namespace umrflow {

namespace {

/// Parameters of several shapes, one in channels-last-3D order, all from one seed.
std::vector<torch::Tensor> parameters() {
  torch::manual_seed(11);
  std::vector<torch::Tensor> p = {torch::randn({8, 4, 3, 3, 3}).contiguous(torch::MemoryFormat::ChannelsLast3d), torch::randn({8}),
                                  torch::randn({5, 7}), torch::randn({})};
  for (auto& t : p) t.set_requires_grad(true);
  return p;
}

/// Gradients for step `k`; parameter 2 gets none at step 1, so its step count falls behind the others'.
void set_grads(std::vector<torch::Tensor>& params, int k) {
  torch::manual_seed(100 + k);
  for (std::size_t i = 0; i < params.size(); ++i) {
    // In the parameter's memory order, as backward makes them (so CUDA's multi-tensor kernels take their fast path).
    torch::Tensor g = (torch::randn(params[i].sizes()) * (1.0 + i)).contiguous(params[i].suggest_memory_format());
    params[i].mutable_grad() = (i == 2 && k == 1) ? torch::Tensor() : g;
  }
}

bool bit_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

/// Steps `a` over `ours` and `b` over `ref` with the same gradients for steps [from, to); fails at the first step
/// after which their weights differ.
::testing::AssertionResult step_alike(torch::optim::Optimizer& a, std::vector<torch::Tensor>& ours, torch::optim::Optimizer& b,
                                      std::vector<torch::Tensor>& ref, int from, int to) {
  for (int k = from; k < to; ++k) {
    set_grads(ours, k);
    set_grads(ref, k);
    a.step();
    b.step();
    if (!bit_equal(ours, ref)) return ::testing::AssertionFailure() << "the weights differ after step " << k;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

// Five steps with weight decay, uneven step counts and a channels-last weight give bit for bit the weights of
// torch::optim::AdamW (the CPU runs each multi-tensor call as the per-tensor loop).
TEST(MultiTensorAdamW, EqualsTorchAdamWBitForBit) {
  for (const double decay : {0.0, 1e-2}) {
    auto ours = parameters(), ref = parameters();
    const auto options = torch::optim::AdamWOptions(3e-2).weight_decay(decay);
    MultiTensorAdamW a(ours, options);
    torch::optim::AdamW b(ref, options);
    ASSERT_TRUE(step_alike(a, ours, b, ref, 0, 5)) << "weight decay " << decay;
    EXPECT_FALSE(torch::equal(ours[0], parameters()[0]));  // the weights did move
    EXPECT_TRUE(ours[0].is_contiguous(torch::MemoryFormat::ChannelsLast3d));
  }
}

// The state is AdamW's: saved by one optimizer and loaded by the other, training goes on to the same weights.
TEST(MultiTensorAdamW, SharesTorchAdamWCheckpoints) {
  auto ours = parameters(), ref = parameters();
  const auto options = torch::optim::AdamWOptions(1e-2).weight_decay(1e-3);
  MultiTensorAdamW a(ours, options);
  torch::optim::AdamW b(ref, options);
  ASSERT_TRUE(step_alike(a, ours, b, ref, 0, 3));
  // Swap the states through archives: ours continues from torch's, torch's from ours.
  std::stringstream from_ours, from_torch;
  {
    torch::serialize::OutputArchive out;
    a.save(out);
    out.save_to(from_ours);
  }
  {
    torch::serialize::OutputArchive out;
    b.save(out);
    out.save_to(from_torch);
  }
  MultiTensorAdamW a2(ours, options);
  torch::optim::AdamW b2(ref, options);
  {
    torch::serialize::InputArchive in;
    in.load_from(from_torch);
    a2.load(in);
  }
  {
    torch::serialize::InputArchive in;
    in.load_from(from_ours);
    b2.load(in);
  }
  EXPECT_TRUE(step_alike(a2, ours, b2, ref, 3, 5));
}

// amsgrad is left to torch::optim::AdamW's own step: the same weights.
TEST(MultiTensorAdamW, AmsgradFallsBackToTorch) {
  auto ours = parameters(), ref = parameters();
  const auto options = torch::optim::AdamWOptions(3e-2).amsgrad(true);
  MultiTensorAdamW a(ours, options);
  torch::optim::AdamW b(ref, options);
  EXPECT_TRUE(step_alike(a, ours, b, ref, 0, 3));
}

// StepGradients (gradients set to none, zeros before the step for those that had one) updates every optimizer bit for
// bit as libtorch 1.x's zero_grad() and step() do: parameter 3 has no gradient until step 2 (never stepped before),
// parameter 2 misses its gradient in step 3 (stepped with zeros), step 1 accumulates two backward passes.
TEST(Optimizer, StepGradientsUpdateAsZeroGrad) {
  for (const std::string type : {"adamw", "adam", "sgd"}) {
    TrainSettings t;
    t.optimizer = type;
    t.lr = 1e-2;
    t.weight_decay = 1e-2;
    t.momentum = 0.9;
    auto ours = parameters(), ref = parameters();
    auto a = make_optimizer(t, ours), b = make_optimizer(t, ref);
    StepGradients gradients(*a);
    for (int k = 0; k < 5; ++k) {
      const auto loss = [k](const std::vector<torch::Tensor>& p) {
        torch::Tensor l = (p[0] * p[0]).sum() + p[1].sin().sum();
        if (k != 3) l = l + p[2].tanh().sum();
        if (k >= 2) l = l + p[3] * 2;
        return l;
      };
      gradients.clear();
#if TORCH_VERSION_MAJOR >= 2
      b->zero_grad(/*set_to_none=*/false);
#else
      b->zero_grad();
#endif
      for (int pass = 0; pass < (k == 1 ? 2 : 1); ++pass) {
        loss(ours).backward();
        loss(ref).backward();
      }
      if (k == 3) EXPECT_FALSE(ours[2].grad().defined());
      gradients.step();
      b->step();
      ASSERT_TRUE(bit_equal(ours, ref)) << type << ", step " << k;
      if (k < 2) EXPECT_TRUE(torch::equal(ours[3], parameters()[3])) << type << ": a parameter without gradient moved";
    }
    EXPECT_FALSE(torch::equal(ours[3], parameters()[3])) << type;
  }
  EXPECT_THROW(make_optimizer(TrainSettings{}, {}), std::runtime_error);
}

// After a resume (state loaded, no gradient yet) a parameter the first backward misses is stepped with zeros as in
// the run that went on, because its optimizer state says it had a gradient; a tensor listed twice is stepped once.
TEST(Optimizer, StepGradientsAfterAResumeAndSharedTensors) {
  for (const std::string type : {"adamw", "adam"}) {
    TrainSettings t;
    t.optimizer = type;
    t.lr = 1e-2;
    t.weight_decay = 1e-2;
    auto ours = parameters(), ref = parameters();
    auto a = make_optimizer(t, ours), b = make_optimizer(t, ref);
    StepGradients ga(*a), gb(*b);
    const auto step = [](std::vector<torch::Tensor>& p, StepGradients& g, bool all) {
      g.clear();
      torch::Tensor l = (p[0] * p[0]).sum() + p[1].sin().sum() + p[3] * 2;
      (all ? l + p[2].tanh().sum() : l).backward();
      g.step();
    };
    step(ours, ga, true);
    step(ref, gb, true);
    // `ours` is saved and resumed into a fresh optimizer; `ref` goes on.
    std::stringstream saved;
    {
      torch::serialize::OutputArchive out;
      a->save(out);
      out.save_to(saved);
    }
    for (auto& p : ours) p.mutable_grad() = torch::Tensor();
    auto resumed = make_optimizer(t, ours);
    {
      torch::serialize::InputArchive in;
      in.load_from(saved);
      resumed->load(in);
    }
    StepGradients gr(*resumed);
    step(ours, gr, false);  // parameter 2 gets no gradient
    step(ref, gb, false);
    ASSERT_TRUE(bit_equal(ours, ref)) << type;
  }
  // Shared tensors: the list with repeats steps like the list without.
  TrainSettings t;
  t.optimizer = "adamw";
  t.lr = 1e-2;
  auto once = parameters(), twice = parameters();
  auto a = make_optimizer(t, once), b = make_optimizer(t, {twice[0], twice[1], twice[0], twice[2], twice[3], twice[1]});
  EXPECT_TRUE(step_alike(*a, once, *b, twice, 0, 3));
}

// On CUDA the multi-tensor kernels may round in the last bit: five steps stay within 1e-6 of torch::optim::AdamW
// (tools/gpu_check.sh runs this; skipped without a GPU).
TEST(MultiTensorAdamW, CudaMatchesTorchAdamW) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  std::vector<torch::Tensor> ours, ref;
  for (auto& t : parameters()) {
    ours.push_back(t.detach().to(torch::kCUDA).requires_grad_(true));
    ref.push_back(t.detach().to(torch::kCUDA).requires_grad_(true));
  }
  const auto options = torch::optim::AdamWOptions(3e-2).weight_decay(1e-2);
  MultiTensorAdamW a(ours, options);
  torch::optim::AdamW b(ref, options);
  for (int k = 0; k < 5; ++k) {
    set_grads(ours, k);
    set_grads(ref, k);
    for (auto* list : {&ours, &ref})
      for (auto& p : *list)
        if (p.grad().defined()) p.mutable_grad() = p.grad().to(torch::kCUDA);
    a.step();
    b.step();
  }
  for (std::size_t i = 0; i < ours.size(); ++i) EXPECT_TRUE(torch::allclose(ours[i], ref[i], 1e-6, 1e-6)) << "parameter " << i;
}

}  // namespace umrflow
