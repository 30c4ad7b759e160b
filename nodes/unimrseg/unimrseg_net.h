// unimrseg_net.h: the UniMRSeg network with the authors' parameter names.
//
// A 3D U-Net with BatchNorm and ReLU (inc, down1..down3, a 3D ASPP at 1/8
// resolution, up1..up4, outc) and, when `adapter` is on, the stage-3 reverse
// attention adapter of every encoder level (adaptor_conv_i, fuse_i,
// adaptor_transformer_i). Keys match ../shared/reference/state_dict_keys:
// stage1.tsv (out_channels 4), stage2.tsv (3), stage3.tsv (3 + adapter).
//
// Two paths:
//   complete(x)   = decode(encode(x)), the plain U-Net;
//   incomplete(x) = decode(adapt(x)), where level i computes
//       Fcp = E_i(F_{i-1})            (frozen encoder stage, eval mode, no grad)
//       h   = fuse_i(Fcp + adaptor_conv_i(F_{i-1}))
//       a   = 1 - sigmoid(mean over C and Z of swin_i(h))   (B, 1, X, Y, 1)
//       F_i = Fcp + a * h
//   with F_0 = x and E_1..E_5 = inc, down1, down2, down3, aspp.
// With `freeze_encoder` the encoder's parameters take no gradient and the
// complete path runs it without autograd; its BatchNorm statistics still
// update there in training mode unless `encoder_bn_update` is false.
#pragma once

#include <array>
#include <vector>

#include "unimrseg/unimrseg_parts.h"

namespace umrflow::model {

struct UniMRSegNetOptions {
  std::int64_t in_channels = 4, out_channels = 3;
  std::vector<std::int64_t> widths{64, 128, 256, 512};
  std::vector<std::int64_t> rates{1, 6, 12, 18};
  bool centre_crop = true;  // released up1: upsample x2 then centre-crop back; false: concat at 1/8 directly
  bool relu_head = false;   // ReLU on the output (the stage-1 reconstruction head)
  bool adapter = false;
  std::vector<std::int64_t> heads{2, 4, 4, 8, 8};
  std::vector<std::int64_t> window{1, 7, 7};  // (Z, X, Y)
  double mlp_ratio = 4.0;
  /// Initial scale of the BatchNorm in each fuse_i (PyTorch's default is 1). A
  /// small value makes h, and so the adapter's change to each level, start
  /// near 0: the adapter path then starts close to the plain path. Not in the
  /// released code; an option for short fine-tuning budgets.
  double fuse_gamma = 1.0;
  bool freeze_encoder = false;
  bool encoder_bn_update = true;
  /// The decoder (up1..outc) takes no gradient and normalises with its
  /// BatchNorm running statistics, which stay as loaded: stage 3 then trains
  /// the adapter alone and the complete path keeps the stage-2 decoder. Not
  /// in the released code.
  bool freeze_decoder = false;
  /// The adapter path's batches are normalised by their own statistics in the
  /// decoder's BatchNorm and update its running statistics (released). false:
  /// that path uses the running statistics, which only the complete path moves.
  bool decoder_bn_incomplete = true;
};

struct UniMRSegNetImpl : torch::nn::Module {
  explicit UniMRSegNetImpl(UniMRSegNetOptions options);

  /// Encoder levels x1..x5 (x5 = ASPP output).
  Levels encode(const torch::Tensor& x);
  /// up1..up4 and outc (and the ReLU head when configured).
  torch::Tensor decode(const Levels& f);
  /// decode() for the adapter path, honouring decoder_bn_incomplete.
  torch::Tensor decode_incomplete(const Levels& f);
  /// The adapter path's compensated levels F_1..F_5. Needs `adapter`.
  Levels adapt(const torch::Tensor& x);
  /// The complete path's encoder, honouring freeze_encoder / encoder_bn_update.
  Levels encode_complete(const torch::Tensor& x);

  /// The encoder's submodules (inc .. aspp), in order.
  std::vector<std::shared_ptr<torch::nn::Module>> encoder_stages() const;
  /// The decoder's submodules (up1 .. outc), in order.
  std::vector<std::shared_ptr<torch::nn::Module>> decoder_stages() const;

  UniMRSegNetOptions options;
  /// The parts (unimrseg_parts.h); their children are registered here
  /// under the flat released names, so one set of weights serves both.
  UNet3DEncoder encoder{nullptr};
  UNet3DDecoder decoder{nullptr};
  UniMRSegAdapter adapter{nullptr};
  DoubleConv3D inc{nullptr};
  Down3D down1{nullptr}, down2{nullptr}, down3{nullptr};
  ASPP3D aspp{nullptr};
  Up3D up1{nullptr}, up2{nullptr}, up3{nullptr}, up4{nullptr};
  OutConv3D outc{nullptr};
  std::array<torch::nn::Sequential, 5> adaptor_conv, fuse;
  std::array<SwinLayer3D, 5> adaptor_transformer{nullptr, nullptr, nullptr, nullptr, nullptr};
};
TORCH_MODULE(UniMRSegNet);

/// Python `state_dict()` order: each module's own parameters, then its own
/// buffers, then its children in registration order.
std::vector<std::pair<std::string, torch::Tensor>> state_dict_order(torch::nn::Module& module);

}  // namespace umrflow::model
