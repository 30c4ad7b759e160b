#include <gtest/gtest.h>

#include "umrflow/own_kernels.h"
#include "unet3d/conv3d_forward.h"
#include "padded_input.h"
#include "unet3d/unet3d_blocks.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace umrflow {

namespace {

using model::Conv3x3x3Shape;

/// Brute-force float64 forward pass of a 3x3x3, padding-1 convolution.
std::vector<double> brute_force(const Conv3x3x3Shape& s, const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>& bias) {
  std::vector<double> y(s.n * s.out * s.d * s.h * s.w, 0.0);
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t o = 0; o < s.out; ++o)
      for (std::int64_t z = 0; z < s.d; ++z)
        for (std::int64_t r = 0; r < s.h; ++r)
          for (std::int64_t c = 0; c < s.w; ++c) {
            double sum = bias.empty() ? 0.0 : bias[o];
            for (std::int64_t i = 0; i < s.in; ++i)
              for (int k = 0; k < 27; ++k) {
                const std::int64_t zz = z + k / 9 - 1, rr = r + k / 3 % 3 - 1, cc = c + k % 3 - 1;
                if (zz < 0 || rr < 0 || cc < 0 || zz >= s.d || rr >= s.h || cc >= s.w) continue;
                sum += double(w[(o * s.in + i) * 27 + k]) * x[(((n * s.in + i) * s.d + zz) * s.h + rr) * s.w + cc];
              }
            y[(((n * s.out + o) * s.d + z) * s.h + r) * s.w + c] = sum;
          }
  return y;
}

/// The kernel's output for x in plain (N, C, D, H, W) layout at vector width
/// `width`; tasks run in reverse order.
std::vector<float> kernel(const Conv3x3x3Shape& s, const std::vector<float>& x, const std::vector<float>& w,
                          const std::vector<float>& bias, int width) {
  const std::vector<float> xp = test::padded_input(s, x);
  std::vector<float> y(s.n * s.out * s.d * s.h * s.w, -7.0f);
  model::conv3x3x3_forward(
      s, xp.data(), w.data(), bias.empty() ? nullptr : bias.data(), y.data(),
      [](std::int64_t count, const auto& fn) {
        for (std::int64_t t = count - 1; t >= 0; --t) fn(t);
      },
      width);
  return y;
}

}  // namespace

// At every vector width this CPU runs (16, 8, 4 floats), the kernel equals the
// brute-force float64 sum, with and without bias, for rows shorter than a
// vector, longer and not a multiple of it, planes with an odd number of row
// chunks (the last summed alone), output-channel counts that leave a partial
// block (11 = 8 + 3 or 4 + 4 + 3), a batch of 3, one plane and one row.
TEST(Conv3dForward, EqualsTheBruteForceSumAtEveryVectorWidth) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (const Conv3x3x3Shape& s : {Conv3x3x3Shape{1, 1, 1, 3, 4, 5}, Conv3x3x3Shape{2, 4, 8, 3, 5, 16}, Conv3x3x3Shape{2, 3, 11, 4, 3, 19},
                                  Conv3x3x3Shape{1, 9, 3, 2, 5, 37}, Conv3x3x3Shape{1, 2, 16, 3, 2, 7},
                                  Conv3x3x3Shape{3, 2, 5, 1, 3, 17}, Conv3x3x3Shape{1, 3, 4, 2, 1, 20}}) {
    for (const bool with_bias : {false, true}) {
      std::vector<float> x(s.n * s.in * s.d * s.h * s.w), w(s.out * s.in * 27), bias(with_bias ? s.out : 0);
      for (float& v : x) v = normal(rng);
      for (float& v : w) v = normal(rng);
      for (float& v : bias) v = normal(rng);
      const std::vector<double> want = brute_force(s, x, w, bias);
      for (const int width : {16, 8, 4}) {
        if (width > model::conv3x3x3_vector_width()) continue;
        const std::vector<float> got = kernel(s, x, w, bias, width);
        SCOPED_TRACE("in " + std::to_string(s.in) + " out " + std::to_string(s.out) + " h " + std::to_string(s.h) + " w " +
                     std::to_string(s.w) + (with_bias ? ", bias" : "") + ", width " + std::to_string(width));
        for (std::size_t k = 0; k < want.size(); ++k) ASSERT_NEAR(got[k], want[k], 1e-4 * (1.0 + std::fabs(want[k]))) << "entry " << k;
      }
    }
  }
}

// Without gradients to record, conv3d() computes a 3x3x3 convolution with at
// most 32 output channels and rows of 16 or more with umrflow's forward kernel
// (equal to float64 libtorch, the same bits at one and two intra-op threads,
// other bits than libtorch's float32 kernel); shorter rows, wider outputs, a
// weight whose input channels do not fit x, and own_kernels false are left to
// libtorch.
TEST(Conv3dForward, Conv3dWithoutGradientsTakesItWhereItApplies) {
  torch::manual_seed(8);
  torch::NoGradGuard no_grad;
  const auto takes = [](const torch::Tensor& x, const torch::Tensor& w) {
    return model::takes_conv3x3x3(x, w, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1);
  };
  const torch::Tensor w8 = torch::zeros({8, 8, 3, 3, 3}), w64 = torch::zeros({64, 8, 3, 3, 3});
  EXPECT_TRUE(takes(torch::zeros({1, 8, 4, 4, 16}), w8));
  EXPECT_FALSE(takes(torch::zeros({1, 8, 4, 4, 15}), w8));
  EXPECT_FALSE(takes(torch::zeros({1, 8, 4, 4, 16}), w64));
  EXPECT_FALSE(takes(torch::zeros({1, 7, 4, 4, 16}), w8));
  EXPECT_FALSE(takes(torch::zeros({8}), w8));  // a rank that does not fit: no size read, libtorch says why
  {
    const OwnKernelsScope libtorch_only(false);
    EXPECT_FALSE(takes(torch::zeros({1, 8, 4, 4, 16}), w8));
  }
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(6, 32, 3).padding(1));
  const torch::Tensor x = torch::randn({2, 6, 5, 7, 21});
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> ys;
  for (const int t : {1, 2}) {
    at::set_num_threads(t);
    ys.push_back(model::conv3d(*conv, x));
  }
  at::set_num_threads(threads);
  const torch::Tensor want = torch::conv3d(x.to(torch::kFloat64), conv->weight.to(torch::kFloat64), conv->bias.to(torch::kFloat64), 1, 1);
  EXPECT_TRUE(torch::allclose(ys[0].to(torch::kFloat64), want, 1e-5, 1e-4));
  EXPECT_TRUE(torch::equal(ys[0], ys[1]));
  const OwnKernelsScope libtorch_only(false);
  EXPECT_FALSE(torch::equal(ys[0], model::conv3d(*conv, x))) << "the same bits as libtorch's kernel: the own one was not taken";
}

// The file with the kernels' task loop was compiled with OpenMP, so ATen's
// parallel_for spreads their tasks over the intra-op threads (without it,
// it runs them all on the calling thread).
TEST(Conv3dForward, KernelTasksRunOnTheIntraOpThreads) { EXPECT_TRUE(model::conv3x3x3_parallel()); }

// With a frozen weight and an input that needs its gradient (stage 3's frozen
// decoder), conv3d() goes through conv3x3x3()'s Function, and the input's
// gradient equals float64 libtorch's; the weight gets none.
TEST(Conv3dForward, FrozenWeightStillGivesTheInputGradient) {
  torch::manual_seed(9);
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(16, 8, 3).padding(1));
  for (auto& p : conv->parameters()) p.requires_grad_(false);
  const torch::Tensor x = torch::randn({2, 16, 4, 6, 18}).requires_grad_();
  const torch::Tensor y = model::conv3d(*conv, x);
  ASSERT_TRUE(y.grad_fn());
  EXPECT_NE(y.grad_fn()->name().find("Conv3x3x3Function"), std::string::npos) << y.grad_fn()->name();
  const torch::Tensor up = torch::randn(y.sizes());
  const torch::Tensor gx = torch::autograd::grad({(y * up).sum()}, {x})[0];
  const torch::Tensor x64 = x.detach().to(torch::kFloat64).requires_grad_();
  const torch::Tensor y64 = torch::conv3d(x64, conv->weight.to(torch::kFloat64), conv->bias.to(torch::kFloat64), 1, 1);
  const torch::Tensor gx64 = torch::autograd::grad({(y64 * up.to(torch::kFloat64)).sum()}, {x64})[0];
  EXPECT_TRUE(torch::allclose(y.detach().to(torch::kFloat64), y64.detach(), 1e-5, 1e-4));
  EXPECT_TRUE(torch::allclose(gx.to(torch::kFloat64), gx64, 1e-5, 1e-3));
  EXPECT_FALSE(conv->weight.grad().defined());
}

// A bias of the wrong length or type gets an error that says which (the
// kernel reads float32 values on the CPU, one per output channel).
TEST(Conv3dForward, ABiasThatDoesNotFitIsAnError) {
  const torch::Tensor x = torch::randn({1, 4, 2, 2, 16}), w = torch::randn({8, 4, 3, 3, 3});
  const auto message = [&](const torch::Tensor& bias) {
    try {
      model::conv3x3x3(x, w, bias);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(torch::zeros({7})).find("a bias of 7 values for 8 output channels"), std::string::npos) << message(torch::zeros({7}));
  const std::string wrong_type = message(torch::zeros({8}, torch::kFloat64));
  EXPECT_NE(wrong_type.find("Double"), std::string::npos) << wrong_type;
  EXPECT_NE(wrong_type.find("float32 CPU input"), std::string::npos) << wrong_type;
  EXPECT_TRUE(torch::allclose(model::conv3x3x3(x, w, torch::ones({8})), torch::conv3d(x, w, torch::ones({8}), 1, 1), 1e-5, 1e-4));
}

}  // namespace umrflow
