// decoder2d.h: a saliency decoder with side outputs for the five feature
// levels of a 2D encoder (image2d/resnet.h): a top-down pathway in the manner
// of a feature pyramid, one 1-channel head per level.
//
// Level i (1 = finest, at half the input's resolution) is first reduced to
// `width` channels (1x1 convolution, BatchNorm, ReLU). From the coarsest
// level down, d_5 = conv3x3(r_5) and d_i = conv3x3(r_i + up(d_{i+1})), each
// convolution with BatchNorm and ReLU, up() bilinear to level i's size. Each d_i has a 1x1 head
// (`out_channels` outputs, 1 for saliency); its
// logits are resized bilinearly to twice level 1's size, the input's size
// for a ResNet-50 encoder. `logits` is level 1's; `side` holds levels 2-5's,
// for deep supervision (the SOD recipe trains all five with the structure
// loss).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace umrflow::image2d {

struct SaliencyDecoderImpl : torch::nn::Module {
  /// `channels`: the five levels' channel counts, finest first; each head has
  /// `out_channels` (1 for saliency, the image's channels for a reconstruction).
  SaliencyDecoderImpl(std::vector<std::int64_t> channels, std::int64_t width, std::int64_t out_channels = 1);
  /// Logits of the five levels at twice level 1's size: [0] is the output,
  /// [1..4] the side outputs of levels 2..5.
  std::array<torch::Tensor, 5> forward(const std::array<torch::Tensor, 5>& features);

  torch::nn::ModuleList reduce{nullptr}, fuse{nullptr}, heads{nullptr};
};
TORCH_MODULE(SaliencyDecoder);

}  // namespace umrflow::image2d
