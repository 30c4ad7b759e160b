// decoder2d.h: a decoder with side outputs for the feature levels of a 2D
// encoder (five for ResNet-50, image2d/resnet.h; four for ConvNeXt,
// image2d/convnext.h): a top-down pathway in the manner of a feature
// pyramid, one head per level.
//
// Level i (1 = finest) is first reduced to `width` channels (1x1
// convolution, BatchNorm, ReLU). From the coarsest level L down,
// d_L = conv3x3(r_L) and d_i = conv3x3(r_i + up(d_{i+1})), each convolution
// with BatchNorm and ReLU, up() bilinear to level i's size. Each d_i has a
// 1x1 head (`out_channels` outputs, 1 for saliency); its logits are resized
// bilinearly to `upscale` times level 1's size: the input's size when
// `upscale` is level 1's stride (2 for ResNet-50, 4 for ConvNeXt). Output 0
// is level 1's; the others are levels 2..L's, for deep supervision (the SOD
// recipe trains all five of ResNet-50's with the structure loss).
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace umrflow::image2d {

struct SaliencyDecoderImpl : torch::nn::Module {
  /// `channels`: the levels' channel counts, finest first (at least two);
  /// each head has `out_channels` (1 for saliency, the image's channels for a
  /// reconstruction, the classes for segmentation).
  SaliencyDecoderImpl(std::vector<std::int64_t> channels, std::int64_t width, std::int64_t out_channels = 1, std::int64_t upscale = 2);
  /// Logits of every level at `upscale` times level 1's size: [0] is the
  /// output, [1..] the side outputs of levels 2..L. Throws
  /// std::invalid_argument when the number of levels differs from `channels`.
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& features);

  std::int64_t upscale;

  torch::nn::ModuleList reduce{nullptr}, fuse{nullptr}, heads{nullptr};
};
TORCH_MODULE(SaliencyDecoder);

}  // namespace umrflow::image2d
