#include "unet3d/unet3d_blocks.h"

namespace umrflow::model {

namespace nn = torch::nn;

namespace {
nn::Conv3d conv3(std::int64_t in, std::int64_t out, std::int64_t dilation = 1) {
  return nn::Conv3d(nn::Conv3dOptions(in, out, 3).padding(dilation).dilation(dilation).bias(false));
}
}  // namespace

DoubleConv3DImpl::DoubleConv3DImpl(std::int64_t in, std::int64_t out) {
  double_conv = register_module("double_conv", nn::Sequential(conv3(in, out), nn::BatchNorm3d(out), nn::ReLU(), conv3(out, out),
                                                              nn::BatchNorm3d(out), nn::ReLU()));
}

Down3DImpl::Down3DImpl(std::int64_t in, std::int64_t out) {
  maxpool_conv = register_module("maxpool_conv", nn::Sequential(nn::MaxPool3d(2), DoubleConv3D(in, out)));
}

Up3DImpl::Up3DImpl(std::int64_t in, std::int64_t out, bool crop_larger) : crop(crop_larger) {
  conv = register_module("conv", DoubleConv3D(in, out));
}

torch::Tensor Up3DImpl::forward(const torch::Tensor& deep, const torch::Tensor& skip) {
  namespace F = torch::nn::functional;
  torch::Tensor up = F::interpolate(deep, F::InterpolateFuncOptions()
                                              .scale_factor(std::vector<double>{2, 2, 2})
                                              .mode(torch::kTrilinear)
                                              .align_corners(true));
  // F.pad order is last axis first: [z_lo, z_hi, y_lo, y_hi, x_lo, x_hi].
  std::vector<std::int64_t> pad;
  for (std::int64_t a = 4; a >= 2; --a) {
    const std::int64_t diff = skip.size(a) - up.size(a);
    if (diff < 0 && !crop)
      throw std::runtime_error("up: upsampled size " + c10::str(up.sizes()) + " exceeds the skip " + c10::str(skip.sizes()) +
                               " and centre cropping is off");
    // Python's // floors: for negative differences the low side takes the larger crop.
    const std::int64_t lo = diff >= 0 ? diff / 2 : -((-diff + 1) / 2);
    pad.push_back(lo);
    pad.push_back(diff - lo);
  }
  up = F::pad(up, F::PadFuncOptions(pad));
  return conv->forward(torch::cat({skip, up}, 1));
}

OutConv3DImpl::OutConv3DImpl(std::int64_t in, std::int64_t out) {
  conv = register_module("conv", nn::Conv3d(nn::Conv3dOptions(in, out, 1)));
}

ASPP3DImpl::ASPP3DImpl(std::int64_t in, std::int64_t out, std::vector<std::int64_t> rates) {
  convs = register_module("convs", nn::ModuleList());
  for (auto r : rates) convs->push_back(conv3(in, out, r));
  pooling = register_module("pooling", nn::Sequential(nn::AdaptiveAvgPool3d(1), nn::Conv3d(nn::Conv3dOptions(in, out, 1).bias(false))));
  final_conv = register_module("final_conv",
                               nn::Conv3d(nn::Conv3dOptions(out * static_cast<std::int64_t>(rates.size() + 1), out, 1).bias(false)));
  bn = register_module("bn", nn::BatchNorm3d(out));
}

torch::Tensor ASPP3DImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> branches;
  for (const auto& c : *convs) branches.push_back(c->as<nn::Conv3d>()->forward(x));
  branches.push_back(pooling->forward(x).expand({-1, -1, x.size(2), x.size(3), x.size(4)}));
  return torch::relu(bn->forward(final_conv->forward(torch::cat(branches, 1))));
}

}  // namespace umrflow::model
