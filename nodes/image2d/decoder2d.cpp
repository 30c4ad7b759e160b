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

SaliencyDecoderImpl::SaliencyDecoderImpl(std::vector<std::int64_t> channels, std::int64_t width, std::int64_t out_channels, std::int64_t upscale_)
    : upscale(upscale_) {
  if (channels.size() < 2) throw std::invalid_argument("saliency decoder: at least two levels' channel counts are needed");
  if (width < 1 || out_channels < 1 || upscale < 1) throw std::invalid_argument("saliency decoder: width, out_channels and upscale must be at least 1");
  reduce = register_module("reduce", nn::ModuleList());
  fuse = register_module("fuse", nn::ModuleList());
  heads = register_module("heads", nn::ModuleList());
  for (std::int64_t c : channels) {
    reduce->push_back(conv_bn_relu(c, width, 1));
    fuse->push_back(conv_bn_relu(width, width, 3));
    heads->push_back(nn::Conv2d(nn::Conv2dOptions(width, out_channels, 1)));
  }
}

std::vector<torch::Tensor> SaliencyDecoderImpl::forward(const std::vector<torch::Tensor>& f) {
  const std::size_t levels = reduce->size();
  if (f.size() != levels)
    throw std::invalid_argument("saliency decoder: built for " + std::to_string(levels) + " levels, given " + std::to_string(f.size()));
  std::vector<torch::Tensor> d(levels), out(levels);
  for (std::size_t i = levels; i-- > 0;) {
    torch::Tensor r = reduce[i]->as<nn::Sequential>()->forward(f[i]);
    if (i + 1 < levels) r = r + resized(d[i + 1], r.size(2), r.size(3));
    d[i] = fuse[i]->as<nn::Sequential>()->forward(r);
  }
  const std::int64_t h = f[0].size(2) * upscale, w = f[0].size(3) * upscale;
  for (std::size_t i = 0; i < levels; ++i) out[i] = resized(heads[i]->as<nn::Conv2d>()->forward(d[i]), h, w);
  return out;
}

}  // namespace umrflow::image2d
