// conv3x3x3(): a 3x3x3 convolution whose forward and backward avoid oneDNN
// 2.6's slow cases with few channels (see unet3d_blocks.h). Compiled with
// OpenMP (CMakeLists.txt), so that at::parallel_for spreads the kernels' tasks.
#include "unet3d/conv3d_forward.h"
#include "unet3d/conv3d_weight_grad.h"
#include "unet3d/unet3d_blocks.h"

#include "umrflow/autocast.h"
#include "umrflow/own_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace umrflow::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// x (N, C, D, H, W) with the zero borders both own kernels read: (N, C, D+2,
/// H+2, padded_row(W)).
torch::Tensor padded(const torch::Tensor& x) {
  const std::int64_t w = x.size(4);
  return at::constant_pad_nd(x, {1, padded_row(w) - w - 1, 1, 1, 1, 1}).contiguous();
}

/// Runs fn(t) for t in [0, count) on libtorch's intra-op threads.
const auto intra_op_tasks = [](std::int64_t count, const auto& fn) {
  at::parallel_for(0, count, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) fn(t);
  });
};

Conv3x3x3Shape shape_of(const torch::Tensor& x, const torch::Tensor& weight) {
  return {x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3), x.size(4)};
}

torch::Tensor own_forward(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  TORCH_CHECK(bias.numel() == 0 || bias.numel() == weight.size(0), "conv3x3x3: a bias of ", bias.numel(), " values for ",
              weight.size(0), " output channels");
  TORCH_CHECK(bias.numel() == 0 || (bias.is_cpu() && bias.scalar_type() == torch::kFloat), "conv3x3x3: a bias of ",
              bias.scalar_type(), " on ", bias.device(), " for a float32 CPU input; convert it with .to(torch::kFloat)");
  const torch::Tensor xp = padded(x), w = weight.contiguous(), b = bias.numel() > 0 ? bias.contiguous() : bias;
  torch::Tensor y = torch::empty({x.size(0), weight.size(0), x.size(2), x.size(3), x.size(4)}, x.options());
  conv3x3x3_forward(shape_of(x, weight), xp.data_ptr<float>(), w.data_ptr<float>(), b.numel() > 0 ? b.data_ptr<float>() : nullptr,
                    y.data_ptr<float>(), intra_op_tasks);
  return y;
}

torch::Tensor own_weight_grad(const torch::Tensor& x, const torch::Tensor& grad, const torch::Tensor& weight) {
  const std::int64_t w = x.size(4), row = padded_row(w);
  const torch::Tensor xp = padded(x);
  const torch::Tensor gp = row - 2 == w ? grad.contiguous() : at::constant_pad_nd(grad, {0, row - 2 - w}).contiguous();
  torch::Tensor gw = torch::empty(weight.sizes(), weight.options());
  conv3x3x3_weight_grad(shape_of(x, weight), xp.data_ptr<float>(), gp.data_ptr<float>(), gw.data_ptr<float>(), intra_op_tasks);
  return gw;
}

/// Whether libtorch would send a 3x3x3, stride-1 convolution of t to its
/// reference kernel.
bool reference_case(const torch::Tensor& t) { return takes_reference_kernel(t, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1); }

/// torch::conv3d(x, weight, bias, 1, 1) by umrflow's forward kernel where it
/// applies, else by libtorch's (on with_zero_row(x) where libtorch would take
/// its reference kernel). `bias` may be empty.
torch::Tensor forward_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (conv3x3x3_own_forward(x, weight.size(0))) return own_forward(x, weight, bias);
  const bool zero_row = reference_case(x);
  const torch::Tensor y = torch::conv3d(zero_row ? with_zero_row(x) : x, weight, bias.numel() > 0 ? bias : torch::Tensor(), 1, 1);
  return zero_row ? y.narrow(0, 0, 1).clone() : y;  // a copy: a view made in a Function could not be modified in place later
}

struct Conv3x3x3Function : torch::autograd::Function<Conv3x3x3Function> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["zero_row"] = reference_case(x);  // for libtorch's backward
    ctx->saved_data["bias"] = bias.numel() > 0;  // undefined tensors cannot enter a custom Function in libtorch 1.13
    return forward_conv(x, weight, bias);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(!torch::GradMode::is_enabled(), "conv3x3x3 has no double backward (create_graph); run with execution.own_kernels: false");
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1];
    const bool zero_row = ctx->saved_data["zero_row"].toBool();
    const torch::Tensor grad = grads[0].contiguous();
    const auto rows = [&](const torch::Tensor& t) { return zero_row ? with_zero_row(t) : t; };
    // Input gradient: a flipped forward convolution under 16 output channels.
    // Weight gradient: umrflow's kernel under 16 input channels (oneDNN's
    // im2col fallback), and under 16 output channels on rows of 16 or more
    // (16 to 8 at 32^3: 3.1 ms against oneDNN's 5.7).
    const bool own_x = weight.size(0) < 16, own_w = weight.size(1) < 16 || (weight.size(0) < 16 && x.size(4) >= 16);
    const bool need_x = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    torch::Tensor gx, gw, gb;
    if ((need_x && !own_x) || (need_w && !own_w)) {
      const auto both = at::convolution_backward(rows(grad), rows(x), weight, c10::nullopt, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, false,
                                                 {0, 0, 0}, 1, {need_x && !own_x, need_w && !own_w, false});
      gx = std::get<0>(both);
      gw = std::get<1>(both);
      if (need_x && !own_x && zero_row) gx = gx.narrow(0, 0, 1);
    }
    if (need_x && own_x) {
      // A forward convolution of the output gradient with the weight flipped
      // and its channel axes swapped.
      gx = forward_conv(grad, weight.flip({2, 3, 4}).transpose(0, 1), torch::empty({0}, weight.options()));
    }
    if (need_w && own_w) gw = own_weight_grad(x, grad, weight);
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) gb = grad.sum({0, 2, 3, 4});
    return {gx, gw, gb};
  }
};

bool all_equal(c10::IntArrayRef v, std::int64_t value) {
  return std::all_of(v.begin(), v.end(), [value](std::int64_t e) { return e == value; });
}

}  // namespace

bool conv3x3x3_own_forward(const torch::Tensor& x, std::int64_t out_channels) { return out_channels <= 32 && x.size(4) >= 16; }

bool conv3x3x3_parallel() {
#ifdef INTRA_OP_PARALLEL
  return true;
#else
  return false;
#endif
}

bool takes_conv3x3x3(const torch::Tensor& x, const torch::Tensor& weight, c10::IntArrayRef kernel, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, std::int64_t groups) {
  // A weight that does not fit x is left to libtorch, which says why (each
  // size is read only once the ranks are known).
  if (!(own_kernels() && x.layout() == torch::kStrided && x.dim() == 5 && x.is_cpu() && x.scalar_type() == torch::kFloat &&
        x.is_contiguous() && weight.layout() == torch::kStrided && weight.is_cpu() && weight.dim() == 5 &&
        weight.scalar_type() == torch::kFloat && weight.size(1) == x.size(1) && weight.size(2) == 3 && weight.size(3) == 3 &&
        weight.size(4) == 3 && groups == 1 && all_equal(kernel, 3) && all_equal(stride, 1) && all_equal(padding, 1) &&
        all_equal(dilation, 1) && !autocast::enabled(at::kCPU)))
    return false;
  const bool gradients = torch::GradMode::is_enabled() && (weight.requires_grad() || x.requires_grad());
  return conv3x3x3_own_forward(x, weight.size(0)) || (gradients && (weight.size(0) < 16 || weight.size(1) < 16));
}

torch::Tensor conv3x3x3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const torch::Tensor b = bias.defined() ? bias : torch::empty({0}, weight.options());
  if (torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || b.requires_grad()))
    return Conv3x3x3Function::apply(x, weight, b);
  return forward_conv(x, weight, b);
}

}  // namespace umrflow::model
