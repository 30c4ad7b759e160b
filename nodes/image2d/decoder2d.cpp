#include "image2d/decoder2d.h"

#include <stdexcept>
#include <string>

namespace umrflow::image2d {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

/// Convolution (no bias), BatchNorm, ReLU.
nn::Sequential conv_bn_relu(std::int64_t in, std::int64_t out, std::int64_t k) {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(k / 2).bias(false)), nn::BatchNorm2d(out), nn::ReLU());
}

torch::Tensor resized(const torch::Tensor& x, std::int64_t h, std::int64_t w) {
  if (x.size(2) == h && x.size(3) == w) return x;
  return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<std::int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
}

}  // namespace

SaliencyDecoderImpl::SaliencyDecoderImpl(std::vector<std::int64_t> channels, std::int64_t width, std::int64_t out_channels) {
  if (channels.size() != 5) throw std::invalid_argument("saliency decoder: five levels' channel counts are needed");
  if (width < 1 || out_channels < 1) throw std::invalid_argument("saliency decoder: width and out_channels must be at least 1");
  reduce = register_module("reduce", nn::ModuleList());
  fuse = register_module("fuse", nn::ModuleList());
  heads = register_module("heads", nn::ModuleList());
  for (int i = 0; i < 5; ++i) {
    reduce->push_back(conv_bn_relu(channels[static_cast<std::size_t>(i)], width, 1));
    fuse->push_back(conv_bn_relu(width, width, 3));
    heads->push_back(nn::Conv2d(nn::Conv2dOptions(width, out_channels, 1)));
  }
}

std::array<torch::Tensor, 5> SaliencyDecoderImpl::forward(const std::array<torch::Tensor, 5>& f) {
  std::array<torch::Tensor, 5> d, out;
  for (int i = 4; i >= 0; --i) {
    torch::Tensor r = reduce[static_cast<std::size_t>(i)]->as<nn::Sequential>()->forward(f[static_cast<std::size_t>(i)]);
    if (i < 4) r = r + resized(d[static_cast<std::size_t>(i + 1)], r.size(2), r.size(3));
    d[static_cast<std::size_t>(i)] = fuse[static_cast<std::size_t>(i)]->as<nn::Sequential>()->forward(r);
  }
  const std::int64_t h = f[0].size(2) * 2, w = f[0].size(3) * 2;
  for (int i = 0; i < 5; ++i) out[static_cast<std::size_t>(i)] = resized(heads[static_cast<std::size_t>(i)]->as<nn::Conv2d>()->forward(d[static_cast<std::size_t>(i)]), h, w);
  return out;
}

}  // namespace umrflow::image2d
