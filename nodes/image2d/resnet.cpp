#include "image2d/resnet.h"

#include <stdexcept>
#include <string>

namespace umrflow::image2d {

namespace nn = torch::nn;

namespace {

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

/// torchvision's _make_layer: `blocks` Bottlenecks of `width`, the first with
/// `stride`; returns the layer and updates the running channel count.
nn::Sequential make_layer(std::int64_t& channels, std::int64_t width, std::int64_t blocks, std::int64_t stride) {
  nn::Sequential layer;
  for (std::int64_t b = 0; b < blocks; ++b) {
    layer->push_back(Bottleneck(channels, width, b == 0 ? stride : 1));
    channels = width * 4;
  }
  return layer;
}

}  // namespace

BottleneckImpl::BottleneckImpl(std::int64_t in, std::int64_t width, std::int64_t stride) {
  conv1 = register_module("conv1", conv(in, width, 1));
  bn1 = register_module("bn1", nn::BatchNorm2d(width));
  conv2 = register_module("conv2", conv(width, width, 3, stride));
  bn2 = register_module("bn2", nn::BatchNorm2d(width));
  conv3 = register_module("conv3", conv(width, width * 4, 1));
  bn3 = register_module("bn3", nn::BatchNorm2d(width * 4));
  if (stride != 1 || in != width * 4)
    downsample = register_module("downsample", nn::Sequential(conv(in, width * 4, 1, stride), nn::BatchNorm2d(width * 4)));
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::relu(bn1->forward(conv1->forward(x)));
  y = torch::relu(bn2->forward(conv2->forward(y)));
  y = bn3->forward(conv3->forward(y));
  return torch::relu(y + (downsample ? downsample->forward(x) : x));
}

ResNet50Impl::ResNet50Impl(std::int64_t in_channels, std::int64_t classes) {
  if (in_channels < 1) throw std::invalid_argument("ResNet-50: in_channels must be at least 1");
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in_channels, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  std::int64_t channels = 64;
  layer1 = register_module("layer1", make_layer(channels, 64, 3, 1));
  layer2 = register_module("layer2", make_layer(channels, 128, 4, 2));
  layer3 = register_module("layer3", make_layer(channels, 256, 6, 2));
  layer4 = register_module("layer4", make_layer(channels, 512, 3, 2));
  if (classes > 0) fc = register_module("fc", nn::Linear(2048, classes));
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* c = m->as<nn::Conv2d>()) nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    if (auto* b = m->as<nn::BatchNorm2d>()) {
      b->weight.fill_(1);
      b->bias.zero_();
    }
  }
}

Features2d ResNet50Impl::features(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != conv1->options.in_channels())
    throw std::invalid_argument("ResNet-50: expected an image batch (B, " + std::to_string(conv1->options.in_channels()) +
                                ", H, W), got " + c10::str(x.sizes()));
  Features2d f(5);
  torch::Tensor prev = x;
  for (int i = 0; i < 5; ++i) prev = f[static_cast<std::size_t>(i)] = stage(i, prev);
  return f;
}

torch::Tensor ResNet50Impl::stage(int i, const torch::Tensor& x) {
  switch (i) {
    case 0: return torch::relu(bn1->forward(conv1->forward(x)));
    case 1: return layer1->forward(torch::max_pool2d(x, 3, 2, 1));
    case 2: return layer2->forward(x);
    case 3: return layer3->forward(x);
    case 4: return layer4->forward(x);
  }
  throw std::out_of_range("ResNet-50 has stages 0..4, not " + std::to_string(i));
}

torch::Tensor ResNet50Impl::forward(const torch::Tensor& x) {
  if (!fc) throw std::logic_error("ResNet-50 built without a classifier (classes 0): use features()");
  return fc->forward(torch::adaptive_avg_pool2d(features(x)[4], {1, 1}).flatten(1));
}

}  // namespace umrflow::image2d
