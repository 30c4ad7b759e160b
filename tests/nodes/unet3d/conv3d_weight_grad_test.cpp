#include <gtest/gtest.h>

#include "umrflow/own_kernels.h"
#include "unet3d/conv3d_weight_grad.h"
#include "padded_input.h"
#include "unet3d/unet3d_blocks.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

namespace umrflow {

namespace {

using model::Conv3x3x3Shape;

/// Brute-force float64 weight gradient of a 3x3x3, padding-1 convolution.
std::vector<double> brute_force(const Conv3x3x3Shape& s, const std::vector<float>& x, const std::vector<float>& dy) {
  std::vector<double> dw(s.out * s.in * 27, 0.0);
  for (std::int64_t o = 0; o < s.out; ++o)
    for (std::int64_t i = 0; i < s.in; ++i)
      for (int k = 0; k < 27; ++k)
        for (std::int64_t n = 0; n < s.n; ++n)
          for (std::int64_t z = 0; z < s.d; ++z)
            for (std::int64_t y = 0; y < s.h; ++y)
              for (std::int64_t c = 0; c < s.w; ++c) {
                const std::int64_t zz = z + k / 9 - 1, yy = y + k / 3 % 3 - 1, cc = c + k % 3 - 1;
                if (zz < 0 || yy < 0 || cc < 0 || zz >= s.d || yy >= s.h || cc >= s.w) continue;
                dw[(o * s.in + i) * 27 + k] += double(dy[(((n * s.out + o) * s.d + z) * s.h + y) * s.w + c]) *
                                               x[(((n * s.in + i) * s.d + zz) * s.h + yy) * s.w + cc];
              }
  return dw;
}

/// The kernel's weight gradient for x, dy in plain (N, C, D, H, W) layout, at
/// vector width `width` (0: the CPU's widest).
std::vector<float> kernel(const Conv3x3x3Shape& s, const std::vector<float>& x, const std::vector<float>& dy, int width = 0) {
  const std::int64_t row = model::padded_row(s.w);
  const std::vector<float> xp = test::padded_input(s, x);
  std::vector<float> gp(s.n * s.out * s.d * s.h * (row - 2), 0.0f);
  for (std::int64_t c = 0; c < s.n * s.out; ++c)
    for (std::int64_t z = 0; z < s.d; ++z)
      for (std::int64_t y = 0; y < s.h; ++y)
        std::copy_n(&dy[((c * s.d + z) * s.h + y) * s.w], s.w, &gp[((c * s.d + z) * s.h + y) * (row - 2)]);
  std::vector<float> dw(s.out * s.in * 27, -1.0f);
  model::conv3x3x3_weight_grad(
      s, xp.data(), gp.data(), dw.data(),
      [&](std::int64_t count, const auto& fn) {
        for (std::int64_t t = 0; t < count; ++t) fn(t);
      },
      width);
  return dw;
}

}  // namespace

// At every vector width this CPU runs (16, 8, 4 floats), the kernel equals the
// brute-force float64 sum for odd sizes, rows shorter and longer than a
// vector, output-channel counts that leave a partial block, planes split into
// several tiles of rows (W = 1000: 8 rows per tile), a batch of 3, one plane,
// one row, and empty rows (W = 0: a zero gradient).
TEST(Conv3dWeightGrad, EqualsTheBruteForceSumAtEveryVectorWidth) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (const Conv3x3x3Shape& s : {Conv3x3x3Shape{1, 1, 1, 3, 4, 5}, Conv3x3x3Shape{2, 4, 8, 6, 5, 16},
                                  Conv3x3x3Shape{2, 3, 11, 5, 7, 19}, Conv3x3x3Shape{1, 8, 3, 4, 3, 37},
                                  Conv3x3x3Shape{1, 2, 8, 2, 19, 1000}, Conv3x3x3Shape{3, 2, 5, 1, 3, 17},
                                  Conv3x3x3Shape{1, 3, 4, 2, 1, 20}, Conv3x3x3Shape{1, 2, 3, 2, 2, 0}}) {
    std::vector<float> x(s.n * s.in * s.d * s.h * s.w), dy(s.n * s.out * s.d * s.h * s.w);
    for (float& v : x) v = normal(rng);
    for (float& v : dy) v = normal(rng);
    const std::vector<double> want = brute_force(s, x, dy);
    for (const int width : {16, 8, 4}) {
      if (width > model::conv3x3x3_vector_width()) continue;
      const std::vector<float> got = kernel(s, x, dy, width);
      SCOPED_TRACE("in " + std::to_string(s.in) + " out " + std::to_string(s.out) + " w " + std::to_string(s.w) + ", width " +
                   std::to_string(width));
      for (std::size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-4 * (1.0 + std::fabs(want[k]))) << "entry " << k;
    }
  }
}

// conv3d() routes a 3x3x3 convolution with few channels in or out, or rows
// of 16 or more, through conv3x3x3(): output, input, weight and bias
// gradients equal float64 libtorch's for one and two rows, with and without
// bias, whichever kernels it takes (own forward on rows of 16 or more; few
// in: own weight gradient; few out: own input gradient, and own weight
// gradient on long rows), and with one row of many input channels and few
// output channels (libtorch's reference-kernel case for the output gradient
// only: 40 x 24 x 24 > 20480).
TEST(Conv3dWeightGrad, Conv3dGradientsEqualTheConvolution) {
  torch::manual_seed(6);
  for (const auto& [in, out, size, w] : {std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>{4, 9, 7, 9},
                                         {17, 5, 7, 9}, {6, 18, 7, 9}, {40, 8, 24, 9}, {8, 8, 6, 20}, {16, 24, 5, 17}, {3, 40, 5, 16}, {20, 6, 4, 18}})
  for (const std::int64_t rows : {1, 2}) {
    for (const bool bias : {false, true}) {
      torch::nn::Conv3d conv(torch::nn::Conv3dOptions(in, out, 3).padding(1).bias(bias));
      const torch::Tensor x = torch::randn({rows, in, size, size, w}).requires_grad_();
      const auto& o = conv->options;
      ASSERT_TRUE(model::takes_conv3x3x3(x, conv->weight, *o.kernel_size(), *o.stride(), {1, 1, 1}, *o.dilation(), 1));
      const torch::Tensor y = model::conv3d(*conv, x);
      ASSERT_NE(y.grad_fn()->name().find("Conv3x3x3Function"), std::string::npos) << y.grad_fn()->name();
      const torch::Tensor up = torch::randn(y.sizes());
      std::vector<torch::Tensor> inputs = {x, conv->weight};
      if (bias) inputs.push_back(conv->bias);
      const auto grads = torch::autograd::grad({(y * up).sum()}, inputs);
      std::vector<torch::Tensor> inputs64;
      for (const auto& t : inputs) inputs64.push_back(t.detach().to(torch::kFloat64).requires_grad_());
      const torch::Tensor y64 = torch::conv3d(inputs64[0], inputs64[1], bias ? inputs64[2] : torch::Tensor(), 1, 1);
      const auto grads64 = torch::autograd::grad({(y64 * up.to(torch::kFloat64)).sum()}, inputs64);
      SCOPED_TRACE(std::to_string(in) + " to " + std::to_string(out) + ", rows " + std::to_string(rows) + (bias ? ", bias" : ""));
      EXPECT_TRUE(torch::allclose(y.to(torch::kFloat64), y64, 1e-5, 1e-4));
      for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_TRUE(torch::allclose(grads[i].to(torch::kFloat64), grads64[i], 1e-5, 1e-3)) << i;
    }
  }
}

// The weight gradient is the same to the bit at one and two intra-op threads.
TEST(Conv3dWeightGrad, ThreadCountChangesNoBit) {
  torch::manual_seed(7);
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(8, 8, 3).padding(1).bias(false));
  const torch::Tensor x = torch::randn({2, 8, 12, 12, 12});
  const torch::Tensor up = torch::randn({2, 8, 12, 12, 12});
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> grads;
  for (const int t : {1, 2}) {
    at::set_num_threads(t);
    conv->zero_grad();
    (model::conv3d(*conv, x) * up).sum().backward();
    grads.push_back(conv->weight.grad().clone());
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(grads[0], grads[1]));
}

// On rows too short for the own forward kernel (4), the backward's case needs
// few channels on either side and a gradient (of the weight or, with the
// weight frozen, of the input); outside it (16 channels in and out, stride 2,
// float64, execution.own_kernels false, no gradients recorded) the
// convolution is left to libtorch.
TEST(Conv3dWeightGrad, OnlyFewChannelsStrideOneWithGradients) {
  const torch::Tensor w8 = torch::zeros({4, 8, 3, 3, 3}).requires_grad_(), w16 = torch::zeros({4, 16, 3, 3, 3}).requires_grad_();
  const torch::Tensor w16_16 = torch::zeros({16, 16, 3, 3, 3}).requires_grad_();
  const torch::Tensor x8 = torch::zeros({1, 8, 4, 4, 4}), x16 = torch::zeros({1, 16, 4, 4, 4});
  EXPECT_TRUE(model::takes_conv3x3x3(x8, w8, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  EXPECT_TRUE(model::takes_conv3x3x3(x16, w16, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  EXPECT_FALSE(model::takes_conv3x3x3(x16, w16_16, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  EXPECT_FALSE(model::takes_conv3x3x3(x8, w8.detach(), {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  EXPECT_TRUE(model::takes_conv3x3x3(x8.clone().requires_grad_(), w8.detach(), {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  EXPECT_FALSE(model::takes_conv3x3x3(x8, w8, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, 1));
  EXPECT_FALSE(model::takes_conv3x3x3(x8, w8, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, {2, 2, 2}, 1));
  EXPECT_FALSE(model::takes_conv3x3x3(x8.to(torch::kFloat64), w8, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  {
    const OwnKernelsScope libtorch_only(false);  // execution.own_kernels: false
    EXPECT_FALSE(model::takes_conv3x3x3(x8, w8, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
  }
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(model::takes_conv3x3x3(x8, w8, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1));
}

}  // namespace umrflow
