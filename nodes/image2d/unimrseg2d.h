// unimrseg2d.h: UniMRSeg for the 2D tasks (RGB-D and RGB-T salient object
// detection, RGB-D semantic segmentation): one single-stream network on the
// 4-channel image (R, G, B, then depth or thermal), an encoder with
// torchvision's names below `encoder.` (`backbone`: ResNet-50, five levels
// 1/2 .. 1/32, for SOD; ConvNeXt, four levels 1/4 .. 1/32, ConvNeXt-B by
// default, for SUN-RGBD), the decoder (`decoder.*`, decoder2d.h) with one
// output per level and, with `adapter`, a reverse-attention adapter in the
// manner of the 3D one (unimrseg/unimrseg_parts.h).
//
// The paper gives no details of its 2D adapter, so this one is umrflow's
// transcription of the 3D design to the encoder's L levels. Level i, with
// F_0 the (incomplete) image:
//   Fcp = E_i(F_{i-1})            the encoder's level i, eval mode, no autograd
//   h   = fuse_i(Fcp + adaptor_conv_i(F_{i-1}))
//   a   = 1 - sigmoid(mean over C of swin_i(attention_in_i(h)))    (B, 1, H, W)
//   F_i = Fcp + a * h
// adaptor_conv_i = average pooling by level i's stride over level i-1's
// (2, or 4 from the image to ConvNeXt's first level), 1x1 convolution,
// BatchNorm, ReLU; fuse_i = 1x1 convolution, BatchNorm, ReLU;
// attention_in_i = 1x1 convolution to `attention_dims[i]` channels, so that
// the Swin layer (the 3D adapter's layer with a 7x7 window and depth 1,
// unimrseg/swin3d.h) stays small at 2048 channels. These 1x1 choices keep
// the adapter near 10 M parameters beside ResNet-50's 23.5 M; 3x3
// convolutions as in 3D would add 60 M at level 5 alone.
//
// Paths: complete(x) = decode(encode(x)); incomplete(x) = decode(adapt(x)).
// `freeze_encoder`: the encoder takes no gradient and the complete path runs
// it without autograd; its BatchNorm statistics (ResNet-50's; ConvNeXt has
// LayerNorms only) still update there in training mode unless
// `encoder_bn_update` is false (stage 3, released 3D).
// `freeze_decoder`: the decoder takes no gradient and runs in eval mode.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "image2d/convnext.h"
#include "image2d/decoder2d.h"
#include "image2d/resnet.h"
#include "unimrseg/swin3d.h"

namespace umrflow::image2d {

enum class Backbone2d { resnet50, convnext };

struct UniMRSeg2dOptions {
  Backbone2d backbone = Backbone2d::resnet50;
  std::vector<std::int64_t> convnext_depths{3, 3, 27, 3};      ///< with convnext; ConvNeXt-B's by default
  std::vector<std::int64_t> convnext_widths{128, 256, 512, 1024};
  std::int64_t in_channels = 4;
  std::int64_t out_channels = 1;  ///< 1 for saliency; the image's channels for the stage-1 reconstruction
  std::int64_t decoder_width = 64;
  bool relu_head = false;         ///< ReLU on every output (the stage-1 reconstruction head)
  bool adapter = false;
  /// One per level; empty: the defaults of adapter_attention.
  std::vector<std::int64_t> attention_dims, heads;
  std::int64_t window = 7;
  double mlp_ratio = 4.0;
  double fuse_gamma = 1.0;  ///< initial scale of each fuse_i BatchNorm; small starts F_i near Fcp
  bool freeze_encoder = false;
  bool encoder_bn_update = true;
  /// The decoder takes no gradient and normalises with its loaded BatchNorm
  /// statistics: stage 3 then trains the adapter alone (as the 3D option).
  bool freeze_decoder = false;
};

/// The adapter's Swin widths and heads as built: `attention_dims`, or by
/// default ResNet-50's 64, 128, 128, 256, 256 or half of each ConvNeXt width;
/// `heads`, or by default the largest count up to one per 32 channels that
/// divides each width (ResNet-50: 2, 4, 4, 8, 8).
void adapter_attention(const UniMRSeg2dOptions& options, std::vector<std::int64_t>& dims, std::vector<std::int64_t>& heads);

/// The decoder's outputs, one per level ([0] the prediction, [1..] the side
/// outputs of levels 2..L), and the levels they were decoded from.
struct Outputs2d {
  std::vector<torch::Tensor> logits;
  Features2d features;
};

struct UniMRSeg2dImpl : torch::nn::Module {
  explicit UniMRSeg2dImpl(UniMRSeg2dOptions options);

  /// The plain path, honouring freeze_encoder / encoder_bn_update.
  Outputs2d complete(const torch::Tensor& x);
  /// The adapter path. Needs `adapter`.
  Outputs2d incomplete(const torch::Tensor& x);
  /// The compensated levels F_1..F_L.
  Features2d adapt(const torch::Tensor& x);
  /// The encoder's levels of x (no freezing applied).
  Features2d encode(const torch::Tensor& x);
  /// The encoder's level i + 1 from level i (the image for i = 0).
  torch::Tensor encoder_level(int i, const torch::Tensor& x);
  /// The number of levels: 5 for ResNet-50, 4 for ConvNeXt.
  std::size_t levels() const { return level_channels.size(); }

  UniMRSeg2dOptions options;
  std::vector<std::int64_t> level_channels;
  /// One of the two is set (per `backbone`), registered as `encoder`.
  ResNet50 resnet{nullptr};
  ConvNeXt convnext{nullptr};
  std::shared_ptr<torch::nn::Module> encoder;
  SaliencyDecoder decoder{nullptr};
  std::vector<torch::nn::Sequential> adaptor_conv, fuse, attention_in;
  std::vector<model::SwinLayer3D> adaptor_transformer;

 private:
  Outputs2d decode(const Features2d& f);
  const torch::Tensor& checked(const torch::Tensor& x) const;
};
TORCH_MODULE(UniMRSeg2d);

}  // namespace umrflow::image2d
