// unimrseg2d.h: UniMRSeg for the 2D tasks (RGB-D and RGB-T salient object
// detection): one single-stream network on the 4-channel image (R, G, B, then
// depth or thermal), a ResNet-50 encoder (`encoder.*`, torchvision's names
// below that prefix), the saliency decoder (`decoder.*`, decoder2d.h) and,
// with `adapter`, a reverse-attention adapter in the manner of the 3D one
// (unimrseg/unimrseg_parts.h).
//
// The paper gives no details of its 2D adapter, so this one is umrflow's
// transcription of the 3D design to ResNet-50's five levels (1/2 .. 1/32,
// 64 .. 2048 channels). Level i, with F_0 the (incomplete) image:
//   Fcp = E_i(F_{i-1})            the encoder's stage i, eval mode, no autograd
//   h   = fuse_i(Fcp + adaptor_conv_i(F_{i-1}))
//   a   = 1 - sigmoid(mean over C of swin_i(attention_in_i(h)))    (B, 1, H, W)
//   F_i = Fcp + a * h
// adaptor_conv_i = 2x2 average pooling, 1x1 convolution, BatchNorm, ReLU
// (every ResNet level halves the resolution); fuse_i = 1x1 convolution,
// BatchNorm, ReLU; attention_in_i = 1x1 convolution to `attention_dims[i]`
// channels, so that the Swin layer (the 3D adapter's layer with a 7x7 window
// and depth 1, unimrseg/swin3d.h) stays small at 2048 channels. These 1x1
// choices keep the adapter near 10 M parameters beside ResNet-50's 23.5 M;
// 3x3 convolutions as in 3D would add 60 M at level 5 alone.
//
// Paths: complete(x) = decode(encode(x)); incomplete(x) = decode(adapt(x)).
// `freeze_encoder`: the encoder takes no gradient and the complete path runs
// it without autograd; its BatchNorm statistics still update there in
// training mode unless `encoder_bn_update` is false (stage 3, released 3D).
// `freeze_decoder`: the decoder takes no gradient and runs in eval mode.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "image2d/decoder2d.h"
#include "image2d/resnet.h"
#include "unimrseg/swin3d.h"

namespace umrflow::image2d {

struct UniMRSeg2dOptions {
  std::int64_t in_channels = 4;
  std::int64_t out_channels = 1;  ///< 1 for saliency; the image's channels for the stage-1 reconstruction
  std::int64_t decoder_width = 64;
  bool relu_head = false;         ///< ReLU on every output (the stage-1 reconstruction head)
  bool adapter = false;
  std::vector<std::int64_t> attention_dims{64, 128, 128, 256, 256};
  std::vector<std::int64_t> heads{2, 4, 4, 8, 8};
  std::int64_t window = 7;
  double mlp_ratio = 4.0;
  double fuse_gamma = 1.0;  ///< initial scale of each fuse_i BatchNorm; small starts F_i near Fcp
  bool freeze_encoder = false;
  bool encoder_bn_update = true;
  /// The decoder takes no gradient and normalises with its loaded BatchNorm
  /// statistics: stage 3 then trains the adapter alone (as the 3D option).
  bool freeze_decoder = false;
};

/// The decoder's five outputs ([0] the prediction, [1..4] the side outputs of
/// levels 2..5) and the five levels they were decoded from.
struct Outputs2d {
  std::array<torch::Tensor, 5> logits;
  Features2d features;
};

struct UniMRSeg2dImpl : torch::nn::Module {
  explicit UniMRSeg2dImpl(UniMRSeg2dOptions options);

  /// The plain path, honouring freeze_encoder / encoder_bn_update.
  Outputs2d complete(const torch::Tensor& x);
  /// The adapter path. Needs `adapter`.
  Outputs2d incomplete(const torch::Tensor& x);
  /// The compensated levels F_1..F_5.
  Features2d adapt(const torch::Tensor& x);

  UniMRSeg2dOptions options;
  ResNet50 encoder{nullptr};
  SaliencyDecoder decoder{nullptr};
  std::array<torch::nn::Sequential, 5> adaptor_conv, fuse, attention_in;
  std::array<model::SwinLayer3D, 5> adaptor_transformer{nullptr, nullptr, nullptr, nullptr, nullptr};

 private:
  Outputs2d decode(const Features2d& f);
  const torch::Tensor& checked(const torch::Tensor& x) const;
};
TORCH_MODULE(UniMRSeg2d);

}  // namespace umrflow::image2d
