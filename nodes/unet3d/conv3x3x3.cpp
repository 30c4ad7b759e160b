// conv3x3x3(): a 3x3x3 convolution with few channels on either side, whose
// backward avoids oneDNN 2.6's slow cases (see unet3d_blocks.h).
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

torch::Tensor own_weight_grad(const torch::Tensor& x, const torch::Tensor& grad, const torch::Tensor& weight) {
  const std::int64_t w = x.size(4), row = padded_row(w);
  const torch::Tensor xp = at::constant_pad_nd(x, {1, row - w - 1, 1, 1, 1, 1}).contiguous();
  const torch::Tensor gp = row - 2 == w ? grad.contiguous() : at::constant_pad_nd(grad, {0, row - 2 - w}).contiguous();
  torch::Tensor gw = torch::empty(weight.sizes(), weight.options());
  const Conv3x3x3Shape s{x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3), w};
  conv3x3x3_weight_grad(s, xp.data_ptr<float>(), gp.data_ptr<float>(), gw.data_ptr<float>(), [](std::int64_t count, const auto& fn) {
    at::parallel_for(0, count, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t t = begin; t < end; ++t) fn(t);
    });
  });
  return gw;
}

/// Whether libtorch would send a 3x3x3, stride-1 convolution of t to its
/// reference kernel.
bool reference_case(const torch::Tensor& t) { return takes_reference_kernel(t, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 1); }

struct Conv3x3x3Function : torch::autograd::Function<Conv3x3x3Function> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    const bool zero_row = reference_case(x);
    ctx->saved_data["zero_row"] = zero_row;
    const bool has_bias = bias.numel() > 0;  // undefined tensors cannot enter a custom Function in libtorch 1.13
    ctx->saved_data["bias"] = has_bias;
    const torch::Tensor y = torch::conv3d(zero_row ? with_zero_row(x) : x, weight, has_bias ? bias : torch::Tensor(), 1, 1);
    return zero_row ? y.narrow(0, 0, 1).clone() : y;  // a copy: a view made here could not be modified in place later
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1];
    const bool zero_row = ctx->saved_data["zero_row"].toBool();
    const torch::Tensor grad = grads[0].contiguous();
    const auto rows = [&](const torch::Tensor& t) { return zero_row ? with_zero_row(t) : t; };
    const bool own_x = weight.size(0) < 16, own_w = weight.size(1) < 16;
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
      // and its channel axes swapped; its own input decides the zero row.
      const bool grad_zero_row = reference_case(grad);
      gx = torch::conv3d(grad_zero_row ? with_zero_row(grad) : grad, weight.flip({2, 3, 4}).transpose(0, 1), {}, 1, 1);
      if (grad_zero_row) gx = gx.narrow(0, 0, 1);
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

bool takes_conv3x3x3(const torch::Tensor& x, const torch::Tensor& weight, c10::IntArrayRef kernel, c10::IntArrayRef stride,
                     c10::IntArrayRef padding, c10::IntArrayRef dilation, std::int64_t groups) {
  return own_kernels() && x.layout() == torch::kStrided && x.dim() == 5 && x.is_cpu() && x.scalar_type() == torch::kFloat &&
         x.is_contiguous() && weight.scalar_type() == torch::kFloat && (weight.size(0) < 16 || weight.size(1) < 16) && groups == 1 &&
         all_equal(kernel, 3) && all_equal(stride, 1) && all_equal(padding, 1) && all_equal(dilation, 1) &&
         torch::GradMode::is_enabled() && weight.requires_grad() && !autocast::enabled(at::kCPU);
}

torch::Tensor conv3x3x3(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  return Conv3x3x3Function::apply(x, weight, bias.defined() ? bias : torch::empty({0}, weight.options()));
}

}  // namespace umrflow::model
