// unimrseg_parts.h: the three parts of the UniMRSeg network as torch modules,
// each with the authors' parameter names, so that they serve both the
// one-module `unimrseg.net` (which registers their children under its own
// flat names) and the split module nodes `unet3d.encoder`, `unet3d.decoder`
// and `unimrseg.adapter*` (whose checkpoint keys are then `ID.<authors' name>`).
//
//   UNet3DEncoder   inc, down1..down3, aspp         x -> levels x1..x5
//   UNet3DDecoder   up1..up4, outc                  levels -> logits
//   UniMRSegAdapter adaptor_conv_i, fuse_i, [adaptor_transformer_i], i = 1..5
//
// The adapter's level i, for x_0 = the (incomplete) input:
//   Fcp = E_i(F_{i-1})                 the encoder's stage, eval mode, no autograd
//   h   = fuse_i(Fcp + adaptor_conv_i(F_{i-1}))
//   F_i = Fcp + m(h)
// where m depends on the adapter kind (paper Table 4):
//   reverse_attention_swin  m(h) = (1 - sigmoid(mean_CZ swin_i(h))) * h    released
//   reverse_attention       m(h) = (1 - sigmoid(mean_CZ h)) * h            no Swin
//   swin                    m(h) = swin_i(h)                               no reverse attention
//   conv                    m(h) = h                                        plain convolutional adapter
// Only the kinds with Swin have adaptor_transformer_i weights.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "unimrseg/swin3d.h"
#include "unet3d/unet3d_blocks.h"

namespace umrflow::model {

using Levels = std::array<torch::Tensor, 5>;
using ModuleList = std::vector<std::shared_ptr<torch::nn::Module>>;

/// Puts modules in eval mode for its lifetime, then restores their modes.
class EvalScope {
 public:
  explicit EvalScope(ModuleList modules);
  ~EvalScope();
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  ModuleList modules_;
  std::vector<bool> was_;
};

/// Row ranges (first row, row count) of a batch of `rows` rows whose subsets
/// carry the labels `group` (the `group` output of modality.subsets: one label
/// per subset, 0 for the complete one, which is skipped): each run of equal
/// labels is one range. Throws std::runtime_error when the rows do not split
/// evenly into the labelled subsets.
std::vector<std::pair<std::int64_t, std::int64_t>> group_rows(const torch::Tensor& group, std::int64_t rows);

/// `group_bn: batched`: the number of groups when `ranges` (from group_rows)
/// cover the rows in order with equal sizes, so that one pass under
/// BatchNormGroups equals a pass per group; otherwise a runtime_error naming
/// the option.
std::int64_t equal_groups(const std::vector<std::pair<std::int64_t, std::int64_t>>& ranges);


/// The `auto` port of the UniMRSeg nodes: the rows of `x` (a subset-major
/// batch described by `present`, (S, `modalities`) subset masks) whose subset
/// is complete go through `complete`, the others through `incomplete`, and
/// each of the returned batch-first tensors is put back at its rows, so output
/// row r belongs to input row r. Both functions return the same number of
/// tensors. Without `incomplete` (a network without adapter) the whole batch
/// goes through `complete` in one call. Throws std::runtime_error when
/// `present` does not describe the batch.
using RowsFn = std::function<std::vector<torch::Tensor>(const torch::Tensor&)>;
std::vector<torch::Tensor> route_by_subset(const torch::Tensor& x, const torch::Tensor& present, std::int64_t modalities, const RowsFn& complete,
                                           const RowsFn& incomplete);

/// Returns x when it is (B, channels, X, Y, Z) with X, Y, Z multiples of 8 (three
/// 2x poolings); otherwise throws std::runtime_error saying what to change.
const torch::Tensor& checked_volume(const torch::Tensor& x, std::int64_t channels);

/// Widths of the five levels: the four encoder widths, the ASPP keeping the last.
std::array<std::int64_t, 5> level_widths(const std::vector<std::int64_t>& widths);

struct UNet3DEncoderImpl : torch::nn::Module {
  /// widths: inc, down1, down2, down3 (four values); rates: the ASPP's dilations.
  UNet3DEncoderImpl(std::int64_t in_channels, std::vector<std::int64_t> widths, std::vector<std::int64_t> rates);
  Levels encode(const torch::Tensor& x);
  /// The plain path of a possibly frozen encoder: `frozen` runs without
  /// autograd; then `bn_update` false also keeps the BatchNorm statistics
  /// (eval mode for the call). Not frozen: encode(x).
  Levels encode_plain(const torch::Tensor& x, bool frozen, bool bn_update);
  /// inc .. aspp, in order.
  ModuleList stages() const;
  /// Stage i (0..4) alone.
  torch::Tensor stage(int i, const torch::Tensor& x);
  DoubleConv3D inc{nullptr};
  Down3D down1{nullptr}, down2{nullptr}, down3{nullptr};
  ASPP3D aspp{nullptr};
};
TORCH_MODULE(UNet3DEncoder);

struct UNet3DDecoderImpl : torch::nn::Module {
  /// centre_crop: the released up1 (upsample x2, centre-crop back); false: concat at 1/8.
  /// relu_head: ReLU on the output (the stage-1 reconstruction).
  UNet3DDecoderImpl(std::vector<std::int64_t> widths, std::int64_t out_channels, bool centre_crop, bool relu_head);
  torch::Tensor decode(const Levels& f);
  /// up1 .. outc, in order.
  ModuleList stages() const;
  Up3D up1{nullptr}, up2{nullptr}, up3{nullptr}, up4{nullptr};
  OutConv3D outc{nullptr};
  bool centre_crop, relu_head;
};
TORCH_MODULE(UNet3DDecoder);

enum class AdapterKind { reverse_attention_swin, reverse_attention, swin, conv };

struct UniMRSegAdapterOptions {
  std::int64_t in_channels = 4;
  std::vector<std::int64_t> widths{64, 128, 256, 512};
  AdapterKind kind = AdapterKind::reverse_attention_swin;
  std::vector<std::int64_t> heads{2, 4, 4, 8, 8};
  std::vector<std::int64_t> window{1, 7, 7};  // (Z, X, Y)
  double mlp_ratio = 4.0;
  /// Initial scale of each fuse_i BatchNorm (PyTorch: 1); small starts F_i near Fcp.
  double fuse_gamma = 1.0;
  /// Levels (1..5) the adapter compensates; at the others F_i = Fcp (paper Table 5).
  std::vector<std::int64_t> levels{1, 2, 3, 4, 5};
};

struct UniMRSegAdapterImpl : torch::nn::Module {
  explicit UniMRSegAdapterImpl(UniMRSegAdapterOptions options);
  /// The compensated levels F_1..F_5 of x through `encoder`'s stages.
  Levels adapt(const torch::Tensor& x, UNet3DEncoderImpl& encoder);
  UniMRSegAdapterOptions options;
  std::array<torch::nn::Sequential, 5> adaptor_conv, fuse;
  std::array<SwinLayer3D, 5> adaptor_transformer{nullptr, nullptr, nullptr, nullptr, nullptr};
};
TORCH_MODULE(UniMRSegAdapter);

}  // namespace umrflow::model
