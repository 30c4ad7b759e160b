// The UniMRSeg 3D U-Net as separate module nodes: `unet3d.encoder` and
// `unet3d.decoder` (unimrseg/unimrseg_parts.h). With an adapter between them
// (unimrseg/unimrseg_nodes.cpp) they compute in a step graph what
// `unimrseg.net` computes, with each part's own init, freezing and BatchNorm
// settings, and checkpoint keys `ID.<authors' name>`.
#include "unet3d/unet3d_nodes.h"

#include "builtin.h"

namespace umrflow::nodes {

using model::Levels;

Packet levels_packet(const Levels& f) {
  Packet out;
  for (int i = 0; i < 5; ++i) out.tensors["features." + std::to_string(i + 1)] = f[i];
  return out;
}

Levels levels_of(const Packet& p) {
  Levels f;
  for (int i = 0; i < 5; ++i) f[i] = p.at("features." + std::to_string(i + 1));
  return f;
}

std::vector<KeySpec> level_keys() {
  std::vector<KeySpec> k;
  for (int i = 1; i <= 5; ++i) k.push_back({"features." + std::to_string(i), 5, "level " + std::to_string(i)});
  return k;
}

void EncoderNode::declare(Declaration<EncoderNode>& d) {
  d.type("unet3d.encoder", NodeKind::module,
         "UniMRSeg's 3D U-Net encoder: inc, down1..down3 (BatchNorm, ReLU) and the 3D ASPP; the authors' weight names.");
  d.input(PortSpec{"input", {{"image", 5, "(B, M, X, Y, Z)"}}, "the plain path"});
  for (KeySpec& k : level_keys()) d.output(std::move(k));
  d.param(&EncoderNode::in_channels_, param::integer("in_channels", 4, "input modalities").min(1));
  d.param(&EncoderNode::widths_,
          param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "encoder widths of inc, down1, down2, down3 (ASPP keeps the last)")
              .length(4)
              .min(1));
  d.param(&EncoderNode::rates_, param::integers("rates", std::vector<std::int64_t>{1, 6, 12, 18}, "ASPP dilation rates").min(1));
  d.param(&EncoderNode::freeze_, param::boolean("freeze", false, "no gradient, no autograd (stage 3); the adapter always runs it so"));
  d.param(&EncoderNode::bn_update_,
          param::boolean("bn_update", true, "with freeze: calls in training still update the BatchNorm statistics (released)"));
}

void EncoderNode::setup() {
  encoder_ = model::UNet3DEncoder(in_channels_, widths_, rates_);
  if (freeze_)
    for (auto& t : encoder_->parameters()) t.set_requires_grad(false);
}

Packet EncoderNode::forward(const std::vector<Packet>& in, Context&) {
  return levels_packet(encode(model::checked_volume(in.at(0).at("image"), in_channels_)));
}

namespace {

class DecoderNode final : public ModuleNode {
 public:
  static void declare(Declaration<DecoderNode>& d) {
    d.type("unet3d.decoder", NodeKind::module, "UniMRSeg's 3D U-Net decoder: up1..up4 and the 1x1x1 head outc; the authors' weight names.");
    d.input(PortSpec{"features", level_keys(), "levels 1-5 (an encoder's or an adapter's)"});
    d.input(PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "each group of subsets is its own batch", true});
    d.output({"logits", 5, "(B, out_channels, X, Y, Z)"});
    d.param(&DecoderNode::widths_, param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "the encoder's widths").length(4).min(1));
    d.param(&DecoderNode::out_channels_,
            param::integer("out_channels", 3, "output channels: 4 for the stage-1 reconstruction head, 3 for [TC, WT, ET]").min(1));
    d.param(&DecoderNode::centre_crop_,
            param::boolean("centre_crop", true, "up1 upsamples the ASPP output and centre-crops it back to 1/8 (released); false: plain concat"));
    d.param(&DecoderNode::head_, param::choice("head", "none", {"none", "relu"}, "activation of the output: relu for the stage-1 reconstruction"));
    d.param(&DecoderNode::group_bn_,
            param::choice("group_bn", "loop", {"loop", "batched"},
                          "with `groups`: loop runs each group as its own batch (released); batched runs all groups in one pass with "
                          "BatchNorm statistics per group (the same result, fewer and larger kernels; groups of equal size)"));
  }
  void setup() { decoder_ = model::UNet3DDecoder(widths_, out_channels_, centre_crop_, head_ == "relu"); }

  torch::nn::Module& module() override { return *decoder_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    const Levels f = levels_of(in.at(0));
    Packet out;
    if (in.at(1).tensors.empty()) {
      out.tensors["logits"] = decoder_->decode(f);
      return out;
    }
    // Each group of subsets is its own batch, as in the released stage 3.
    const auto ranges = model::group_rows(in.at(1).at("group"), f[0].size(0));
    if (group_bn_ == "batched") {
      model::BatchNormGroups scope(model::equal_groups(ranges));
      out.tensors["logits"] = decoder_->decode(f);
      return out;
    }
    std::vector<torch::Tensor> logits;
    for (const auto& [first, count] : ranges) {
      Levels part;
      for (int i = 0; i < 5; ++i) part[i] = f[i].narrow(0, first, count);
      logits.push_back(decoder_->decode(part));
    }
    out.tensors["logits"] = torch::cat(logits);
    return out;
  }

 private:
  std::vector<std::int64_t> widths_;
  std::int64_t out_channels_ = 0;
  bool centre_crop_ = false;
  std::string head_;
  std::string group_bn_;
  model::UNet3DDecoder decoder_{nullptr};
};

}  // namespace

void register_unet3d_nodes(Registry& registry) { add_nodes<EncoderNode, DecoderNode>(registry); }

}  // namespace umrflow::nodes
