// convnext.h: ConvNeXt as torchvision builds it (convnext_base: depths 3, 3,
// 27, 3; widths 128, 256, 512, 1024), with torchvision's parameter names, so
// that a torchvision state dict imported with `umrflow weights import` loads
// tensor for tensor:
//   features.0.0  stem: 4x4 convolution, stride 4      features.0.1  LayerNorm2d
//   features.1    stage 1 (CNBlocks)                   features.2.0  LayerNorm2d, features.2.1  2x2 convolution, stride 2
//   features.3    stage 2   features.4  downsampling   features.5    stage 3   features.6  downsampling
//   features.7    stage 4                              classifier.0  LayerNorm2d, classifier.2  Linear
// A CNBlock `features.s.k`: block.0 7x7 depthwise convolution, block.2
// LayerNorm over channels (eps 1e-6), block.3 Linear 4x, GELU (exact),
// block.5 Linear back, times `layer_scale` (C, 1, 1), plus the input.
// Stochastic depth (training only) is left out: with it torchvision drops
// whole residual branches at random; umrflow's blocks always keep them.
// The stem takes `in_channels` (4 for RGB plus depth); an ImageNet stem has
// 3, so take it with `init: {exclude: [features.0.0.weight]}`.
// Used by the SUN-RGBD task (the paper's ConvNeXt-B), as the node
// image2d.convnext and as image2d.unimrseg's `backbone: convnext`.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace umrflow::image2d {

/// LayerNorm over the channels of a (B, C, H, W) tensor (torchvision's
/// LayerNorm2d: permute to channels-last, layer_norm, permute back).
struct LayerNorm2dImpl : torch::nn::Module {
  explicit LayerNorm2dImpl(std::int64_t channels, double eps = 1e-6);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

/// torchvision's CNBlock (see the top of this file).
struct CNBlockImpl : torch::nn::Module {
  explicit CNBlockImpl(std::int64_t dim, double layer_scale = 1e-6);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential block{nullptr};
  torch::Tensor layer_scale;
};
TORCH_MODULE(CNBlock);

/// The four stage outputs: 1/4, 1/8, 1/16 and 1/32 of the input's size.
using ConvNeXtFeatures = std::array<torch::Tensor, 4>;

struct ConvNeXtImpl : torch::nn::Module {
  /// ConvNeXt-B by default; `classes` > 0 adds torchvision's classifier.
  /// Initialised as torchvision does: convolution and linear weights
  /// trunc_normal_(std 0.02) with torchvision's absolute bounds +-2 (so in
  /// effect untruncated), biases zero, norms 1 and 0.
  explicit ConvNeXtImpl(std::int64_t in_channels = 3, std::vector<std::int64_t> depths = {3, 3, 27, 3},
                        std::vector<std::int64_t> widths = {128, 256, 512, 1024}, std::int64_t classes = 0);
  /// Throws std::invalid_argument for an input other than (B, in_channels, H, W).
  ConvNeXtFeatures features(const torch::Tensor& x);
  /// Level i + 1 (i = 0..3) from level i (the image for i = 0): the stem and
  /// stage 1, then each downsampling with the stage after it.
  torch::Tensor level(int i, const torch::Tensor& x);
  /// The four levels' channels (the widths).
  std::vector<std::int64_t> level_channels() const;
  /// Class logits (B, classes); needs `classes` > 0.
  torch::Tensor forward(const torch::Tensor& x);

  std::int64_t in_channels;
  std::vector<std::int64_t> widths;
  /// `features`: stem, stage 1, downsampling, ..., stage 4; each a ModuleList
  /// (libtorch's Sequential cannot nest) run in order.
  torch::nn::ModuleList stages{nullptr};
  torch::nn::Sequential classifier{nullptr};
};
TORCH_MODULE(ConvNeXt);

}  // namespace umrflow::image2d
