// resnet.h: ResNet-50 as torchvision builds it (v1.5: the stride of a
// downsampling Bottleneck on its 3x3 convolution), with torchvision's
// parameter and buffer names (conv1, bn1, layer1.0.conv1, ...,
// layer1.0.downsample.0, fc), so that a torchvision state dict imported with
// `umrflow weights import` loads tensor for tensor. The stem takes
// `in_channels` (4 for RGB plus depth or thermal as one input, as UniMRSeg's
// 2D networks do); an ImageNet stem has 3, so take it with
// `init: {exclude: [conv1.weight]}` or import it separately.
#pragma once

#include <vector>
#include <cstdint>

#include <torch/torch.h>

namespace umrflow::image2d {

/// torchvision's Bottleneck: 1x1 (width), 3x3 (width, stride), 1x1 (4 x
/// width), each with BatchNorm; ReLU after each but the last, which follows
/// the sum with the shortcut (a 1x1 convolution and BatchNorm when the shape
/// changes, `downsample`).
struct BottleneckImpl : torch::nn::Module {
  BottleneckImpl(std::int64_t in, std::int64_t width, std::int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

/// Feature levels of an image (B, C, H, W), finest first. ResNet-50's five:
/// the stem after ReLU (64 channels, 1/2 resolution), then layer1..layer4
/// (256, 512, 1024, 2048 channels; 1/4, 1/8, 1/16, 1/32).
using Features2d = std::vector<torch::Tensor>;

/// ResNet-50 without its classifier unless `classes` > 0 (then `fc` holds
/// torchvision's 2048 x classes layer). Initialised as torchvision does:
/// convolutions Kaiming-normal (fan out, ReLU), BatchNorm weight 1, bias 0.
struct ResNet50Impl : torch::nn::Module {
  explicit ResNet50Impl(std::int64_t in_channels = 3, std::int64_t classes = 0);
  Features2d features(const torch::Tensor& x);
  /// Level i + 1 (i = 0..4) from level i (the image for i = 0): the stem,
  /// then max pooling and layer1, then layer2, layer3, layer4.
  torch::Tensor stage(int i, const torch::Tensor& x);
  /// Class logits (B, classes); needs `classes` > 0.
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet50);

}  // namespace umrflow::image2d
