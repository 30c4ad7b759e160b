#include <gtest/gtest.h>

#include "unet3d/unet3d_blocks.h"
#include "parity.h"

namespace umrflow {

using test::load_parity_state;
using test::parity;

namespace {
void expect_close(const torch::Tensor& got, const torch::Tensor& want, double rel = 1e-5) {
  ASSERT_EQ(got.sizes(), want.sizes());
  const double scale = want.abs().max().item<double>();
  EXPECT_LE((got - want).abs().max().item<double>(), rel * std::max(scale, 1.0)) << "max |difference| too large";
}
#define NEED_PARITY() \
  if (!test::have_parity()) GTEST_SKIP() << "../shared/reference/unimrseg_parity_vectors.h5 is not beside the project"
}  // namespace

// DoubleConv3D in eval mode computes the authors' output with their weights.
TEST(UNet3DBlocks, DoubleConvEvalParity) {
  NEED_PARITY();
  model::DoubleConv3D m(4, 8);
  load_parity_state(*m, "double_conv_eval");
  m->eval();
  torch::NoGradGuard g;
  expect_close(m->forward(parity("double_conv_eval/input0")), parity("double_conv_eval/output0"));
}

// In train mode it uses batch statistics (output equals the authors'), and each
// BatchNorm moves its running statistics by momentum 0.1 toward the batch's
// (mean, unbiased variance), checked against a functional recomputation.
TEST(UNet3DBlocks, DoubleConvTrainParity) {
  NEED_PARITY();
  namespace F = torch::nn::functional;
  model::DoubleConv3D m(4, 8);
  load_parity_state(*m, "double_conv_train");
  auto params = m->named_parameters();
  auto buffers = m->named_buffers();
  torch::NoGradGuard g;
  std::map<std::string, torch::Tensor> before;
  for (const auto& b : buffers) before[b.key()] = b.value().clone();
  const torch::Tensor x = parity("double_conv_train/input0");
  m->train();
  expect_close(m->forward(x), parity("double_conv_train/output0"));
  // Independent recomputation of each BatchNorm's batch statistics.
  torch::Tensor h = x;
  for (const char* pair : {"0:1", "3:4"}) {
    const std::string conv = std::string(pair).substr(0, 1), bn = std::string(pair).substr(2, 1);
    h = F::conv3d(h, params["double_conv." + conv + ".weight"], F::Conv3dFuncOptions().padding(1));
    const torch::Tensor mean = h.mean({0, 2, 3, 4});
    const torch::Tensor var_unbiased = h.var({0, 2, 3, 4}, /*unbiased=*/true);
    const std::string k = "double_conv." + bn;
    expect_close(buffers[k + ".running_mean"], 0.9 * before[k + ".running_mean"] + 0.1 * mean);
    expect_close(buffers[k + ".running_var"], 0.9 * before[k + ".running_var"] + 0.1 * var_unbiased);
    const torch::Tensor var_biased = h.var({0, 2, 3, 4}, /*unbiased=*/false);
    h = torch::relu((h - mean.view({1, -1, 1, 1, 1})) / torch::sqrt(var_biased.view({1, -1, 1, 1, 1}) + 1e-5) *
                        params[k + ".weight"].view({1, -1, 1, 1, 1}) + params[k + ".bias"].view({1, -1, 1, 1, 1}));
  }
  expect_close(h, parity("double_conv_train/output0"), 1e-4);
}

// ASPP3D (dilations 1, 6, 12, 18 + pooling branch) matches.
TEST(UNet3DBlocks, AsppParity) {
  NEED_PARITY();
  model::ASPP3D m(8, 8);
  load_parity_state(*m, "aspp_eval");
  m->eval();
  torch::NoGradGuard g;
  expect_close(m->forward(parity("aspp_eval/input0")), parity("aspp_eval/output0"));
}

// Up3D matches both when the skip is twice the deep size and when the
// upsampled tensor must be centre-cropped back (the released up1 quirk).
TEST(UNet3DBlocks, UpParityWithAndWithoutCrop) {
  NEED_PARITY();
  for (const char* group : {"up_regular", "up_same_size_crop"}) {
    model::Up3D m(32, 8);
    load_parity_state(*m, group);
    m->eval();
    torch::NoGradGuard g;
    const std::string gr = group;
    expect_close(m->forward(parity(gr + "/input0"), parity(gr + "/input1")), parity(gr + "/output0"));
  }
  model::Up3D strict(32, 8, /*crop=*/false);
  strict->eval();
  EXPECT_THROW(strict->forward(torch::rand({1, 16, 4, 4, 4}), torch::rand({1, 16, 4, 4, 4})), std::runtime_error);
}

// BatchNorm over G groups in one pass equals G separate BatchNorm calls on
// the groups in order: outputs, input and affine gradients, running
// statistics and the batch counter, for a fixed and a cumulative momentum.
TEST(Unet3dBlocks, GroupedBatchNormEqualsOneCallPerGroup) {
  for (const std::int64_t groups : {1, 2, 7}) {
    for (const bool cumulative : {false, true}) {
      auto options = torch::nn::BatchNorm3dOptions(3);
      if (cumulative) options.momentum(c10::nullopt);
      torch::nn::BatchNorm3d loop(options), batched(options);
      torch::manual_seed(3);
      for (auto* bn : {&loop, &batched}) {
        torch::NoGradGuard no_grad;
        (*bn)->weight.copy_(torch::linspace(0.5, 1.5, 3));
        (*bn)->bias.copy_(torch::linspace(-0.2, 0.3, 3));
        (*bn)->running_mean.fill_(0.1);
        (*bn)->running_var.fill_(2.0);
      }
      const torch::Tensor x = torch::randn({groups * 2, 3, 4, 3, 5}) * 3 + 1;
      const torch::Tensor w = torch::randn(x.sizes());  // a loss that weights every output differently
      torch::Tensor x1 = x.clone().requires_grad_(true), x2 = x.clone().requires_grad_(true);
      std::vector<torch::Tensor> parts;
      for (std::int64_t g = 0; g < groups; ++g) parts.push_back(loop->forward(x1.narrow(0, 2 * g, 2)));
      const torch::Tensor y1 = torch::cat(parts);
      torch::Tensor y2;
      {
        model::BatchNormGroups scope(groups);
        y2 = model::batch_norm(*batched, x2);
      }
      EXPECT_EQ(model::BatchNormGroups::current(), 1);
      (y1 * w).sum().backward();
      (y2 * w).sum().backward();
      const std::string what = std::to_string(groups) + " groups" + (cumulative ? ", cumulative" : "");
      expect_close(y2, y1, 1e-6);
      expect_close(x2.grad(), x1.grad(), 1e-5);
      expect_close(batched->weight.grad(), loop->weight.grad(), 1e-5);
      expect_close(batched->bias.grad(), loop->bias.grad(), 1e-5);
      expect_close(batched->running_mean, loop->running_mean, 1e-6);
      expect_close(batched->running_var, loop->running_var, 1e-6);
      EXPECT_EQ(batched->num_batches_tracked.item<std::int64_t>(), groups) << what;
    }
  }
  // Rows that do not split into equal groups are refused; eval mode ignores the scope.
  torch::nn::BatchNorm3d bn(3);
  {
    model::BatchNormGroups scope(2);
    EXPECT_THROW(model::batch_norm(*bn, torch::randn({3, 3, 2, 2, 2})), std::runtime_error);
    bn->eval();
    EXPECT_TRUE(torch::equal(model::batch_norm(*bn, torch::ones({3, 3, 2, 2, 2})), bn->forward(torch::ones({3, 3, 2, 2, 2}))));
  }
}

}  // namespace umrflow

namespace umrflow {

// conv3d (a batch of one padded onto oneDNN's kernel) gives the convolution
// and its input and weight gradients: against the same convolution in
// float64, for plain and dilated kernels, one row and (passed through) two.
TEST(UNet3DBlocks, Conv3dOfOneRowEqualsTheConvolution) {
  torch::manual_seed(3);
  for (const std::int64_t dilation : {1, 2}) {
    for (const std::int64_t rows : {1, 2}) {
      torch::nn::Conv3d conv(torch::nn::Conv3dOptions(6, 5, 3).padding(dilation).dilation(dilation).bias(false));
      const torch::Tensor x = torch::randn({rows, 6, 12, 10, 8}).requires_grad_();
      const torch::Tensor y = model::conv3d(*conv, x);
      const torch::Tensor up = torch::randn(y.sizes());
      const auto grads = torch::autograd::grad({(y * up).sum()}, {x, conv->weight});
      const torch::Tensor x64 = x.detach().to(torch::kFloat64).requires_grad_();
      const torch::Tensor w64 = conv->weight.detach().to(torch::kFloat64).requires_grad_();
      const torch::Tensor y64 = torch::conv3d(x64, w64, {}, 1, dilation, dilation);
      const auto grads64 = torch::autograd::grad({(y64 * up.to(torch::kFloat64)).sum()}, {x64, w64});
      SCOPED_TRACE("dilation " + std::to_string(dilation) + ", rows " + std::to_string(rows));
      expect_close(y.to(torch::kFloat64), y64);
      expect_close(grads[0].to(torch::kFloat64), grads64[0]);
      expect_close(grads[1].to(torch::kFloat64), grads64[1]);
    }
  }
}

// taps_outside marks exactly the axes whose dilation reaches past the input
// (dilation >= size), and only for "same" zero padding with stride 1.
TEST(UNet3DBlocks, TapsOutsideOnlyWhereTheDilationSpansTheAxis) {
  using O = torch::nn::Conv3dOptions;
  const auto outside = [](const O& o) { return model::taps_outside(torch::nn::Conv3d(o)->options, {2, 3, 9, 10, 8}); };
  EXPECT_EQ(outside(O(3, 3, 3).padding(9).dilation(9)), (std::array<bool, 3>{true, false, true}));
  EXPECT_EQ(outside(O(3, 3, 3).padding(7).dilation(7)), (std::array<bool, 3>{false, false, false}));
  EXPECT_EQ(outside(O(3, 3, 3).padding(10).dilation(10)), (std::array<bool, 3>{true, true, true}));
  EXPECT_EQ(outside(O(3, 3, 3).padding(10).dilation(10).stride(2)), (std::array<bool, 3>{false, false, false}));
  EXPECT_EQ(outside(O(3, 3, 3).padding(5).dilation(10)), (std::array<bool, 3>{false, false, false}));
  EXPECT_EQ(outside(O(3, 3, 3).padding(10).dilation(10).padding_mode(torch::kReplicate)),
            (std::array<bool, 3>{false, false, false}));
  EXPECT_EQ(outside(O(3, 3, {1, 3, 3}).padding({0, 10, 10}).dilation(10)), (std::array<bool, 3>{false, true, true}));
}

// With the outer taps cut away (dilations at and past the input's size, per
// axis and on all three), conv3d still gives the full convolution and its
// gradients, the cut taps' weight gradients zero: against float64.
TEST(UNet3DBlocks, Conv3dWithTapsInThePaddingEqualsTheFullConvolution) {
  torch::manual_seed(5);
  for (const std::int64_t dilation : {8, 9, 12}) {
    for (const std::int64_t rows : {1, 2}) {
      torch::nn::Conv3d conv(torch::nn::Conv3dOptions(6, 5, 3).padding(dilation).dilation(dilation).bias(true));
      const torch::Tensor x = torch::randn({rows, 6, 11, 9, 8}).requires_grad_();
      const torch::Tensor y = model::conv3d(*conv, x);
      const torch::Tensor up = torch::randn(y.sizes());
      const auto grads = torch::autograd::grad({(y * up).sum()}, {x, conv->weight, conv->bias});
      const torch::Tensor x64 = x.detach().to(torch::kFloat64).requires_grad_();
      const torch::Tensor w64 = conv->weight.detach().to(torch::kFloat64).requires_grad_();
      const torch::Tensor b64 = conv->bias.detach().to(torch::kFloat64).requires_grad_();
      const torch::Tensor y64 = torch::conv3d(x64, w64, b64, 1, dilation, dilation);
      const auto grads64 = torch::autograd::grad({(y64 * up.to(torch::kFloat64)).sum()}, {x64, w64, b64});
      SCOPED_TRACE("dilation " + std::to_string(dilation) + ", rows " + std::to_string(rows));
      expect_close(y.to(torch::kFloat64), y64);
      for (std::size_t i = 0; i < 3; ++i) expect_close(grads[i].to(torch::kFloat64), grads64[i]);
      if (dilation >= 11) {  // every axis cut: all but the centre tap's gradients exactly zero
        torch::Tensor outer = grads[1].clone();
        outer.select(2, 1).select(2, 1).select(2, 1).zero_();
        EXPECT_EQ(outer.abs().max().item<double>(), 0.0);
      }
    }
  }
}

}  // namespace umrflow
