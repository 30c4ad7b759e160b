// The UniMRSeg network as separate module nodes: `unet3d.encoder`,
// `unet3d.decoder` and the adapter variants `unimrseg.adapter`,
// `unimrseg.adapter_no_swin`, `unimrseg.adapter_no_ra`, `unimrseg.adapter_conv`
// (model/unimrseg_parts.h). Composed in a step graph they compute what
// `unimrseg.net` computes, with each part's own init, freezing and BatchNorm
// settings, and checkpoint keys `ID.<authors' name>`.
#include "builtin.h"
#include "model/unimrseg_parts.h"
#include "umrflow/module.h"

namespace umrflow::nodes {

namespace {

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

class EncoderNode final : public ModuleNode {
 public:
  explicit EncoderNode(const Params& p)
      : in_channels_(p.get_int("in_channels")),
        freeze_(p.get_bool("freeze")),
        bn_update_(p.get_bool("bn_update")),
        encoder_(in_channels_, p.get_ints("widths"), p.get_ints("rates")) {
    if (freeze_)
      for (auto& t : encoder_->parameters()) t.set_requires_grad(false);
  }
  torch::nn::Module& module() override { return *encoder_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    return levels_packet(encode(model::checked_volume(in.at(0).at("image"), in_channels_)));
  }
  /// The plain path, honouring `freeze` and `bn_update`.
  Levels encode(const torch::Tensor& x) { return encoder_->encode_plain(x, freeze_, bn_update_); }
  model::UNet3DEncoderImpl& encoder() { return *encoder_; }
  std::int64_t in_channels() const { return in_channels_; }

 private:
  std::int64_t in_channels_;
  bool freeze_, bn_update_;
  model::UNet3DEncoder encoder_;
};

class DecoderNode final : public ModuleNode {
 public:
  explicit DecoderNode(const Params& p)
      : decoder_(p.get_ints("widths"), p.get_int("out_channels"), p.get_bool("centre_crop"), p.get_text("head") == "relu") {}
  torch::nn::Module& module() override { return *decoder_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    const Levels f = levels_of(in.at(0));
    Packet out;
    if (in.at(1).tensors.empty()) {
      out.tensors["logits"] = decoder_->decode(f);
      return out;
    }
    // Each group of subsets is its own batch, as in the released stage 3.
    std::vector<torch::Tensor> logits;
    for (const auto& [first, count] : model::group_rows(in.at(1).at("group"), f[0].size(0))) {
      Levels part;
      for (int i = 0; i < 5; ++i) part[i] = f[i].narrow(0, first, count);
      logits.push_back(decoder_->decode(part));
    }
    out.tensors["logits"] = torch::cat(logits);
    return out;
  }

 private:
  model::UNet3DDecoder decoder_;
};

template <model::AdapterKind Kind>
class AdapterNode final : public ModuleNode {
 public:
  explicit AdapterNode(const Params& p) : encoder_id_(p.get_text("encoder")), adapter_(options(p)) {}
  torch::nn::Module& module() override { return *adapter_; }

  void link(const ModuleLookup& lookup) override {
    encoder_ = dynamic_cast<EncoderNode*>(lookup(encoder_id_));
    if (!encoder_)
      throw std::runtime_error("parameter encoder: '" + encoder_id_ + "' is not a unet3d.encoder module of this graph");
    if (encoder_->in_channels() != adapter_->options.in_channels)
      throw std::runtime_error("in_channels " + std::to_string(adapter_->options.in_channels) + " differs from encoder '" +
                               encoder_id_ + "' (" + std::to_string(encoder_->in_channels()) + ")");
  }

  Packet forward(const std::vector<Packet>& in, Context&) override {
    const Packet &incomplete = in.at(0), &groups = in.at(1), &automatic = in.at(2);
    if (incomplete.tensors.empty() == automatic.tensors.empty())
      throw std::runtime_error("bind exactly one of the ports incomplete and auto");
    if (!automatic.tensors.empty()) return run_auto(automatic.at("image"), automatic.at("present"));
    const torch::Tensor& x = model::checked_volume(incomplete.at("image"), adapter_->options.in_channels);
    if (groups.tensors.empty()) return levels_packet(adapter_->adapt(x, encoder_->encoder()));
    std::array<std::vector<torch::Tensor>, 5> levels;
    for (const auto& [first, count] : model::group_rows(groups.at("group"), x.size(0))) {
      const Levels f = adapter_->adapt(x.narrow(0, first, count), encoder_->encoder());
      for (int i = 0; i < 5; ++i) levels[i].push_back(f[i]);
    }
    Levels f;
    for (int i = 0; i < 5; ++i) f[i] = torch::cat(levels[i]);
    return levels_packet(f);
  }

 private:
  static model::UniMRSegAdapterOptions options(const Params& p) {
    model::UniMRSegAdapterOptions o;
    o.kind = Kind;
    o.in_channels = p.get_int("in_channels");
    o.widths = p.get_ints("widths");
    o.fuse_gamma = p.get_number("fuse_gamma");
    o.levels = p.get_ints("levels");
    if (Kind == model::AdapterKind::reverse_attention_swin || Kind == model::AdapterKind::swin) {
      o.heads = p.get_ints("heads");
      o.window = p.get_ints("window");
    }
    return o;
  }

  /// Complete subsets through the encoder's plain path, the others through the
  /// adapter: the levels evaluation over all subsets hands the decoder.
  Packet run_auto(const torch::Tensor& image, const torch::Tensor& present) {
    const torch::Tensor& x = model::checked_volume(image, adapter_->options.in_channels);
    const model::RowSplit split = model::split_complete_rows(present, x.size(0), x.size(1));
    Levels f;
    auto place = [&](const std::vector<std::int64_t>& idx, const Levels& l) {
      for (int i = 0; i < 5; ++i) model::place_rows(f[i], l[i], idx, x.size(0));
    };
    auto rows_of = [&](const std::vector<std::int64_t>& idx) { return x.index_select(0, torch::tensor(idx, torch::kLong).to(x.device())); };
    if (!split.complete.empty()) place(split.complete, encoder_->encode(rows_of(split.complete)));
    if (!split.incomplete.empty()) place(split.incomplete, adapter_->adapt(rows_of(split.incomplete), encoder_->encoder()));
    return levels_packet(f);
  }

  std::string encoder_id_;
  EncoderNode* encoder_ = nullptr;
  model::UniMRSegAdapter adapter_;
};

std::vector<ParamSpec> width_params() {
  return {param::integer("in_channels", 4, "input modalities").min(1),
          param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "encoder widths of inc, down1, down2, down3 (ASPP keeps the last)")
              .length(4)
              .min(1)};
}

template <model::AdapterKind Kind>
NodeSpec adapter_spec(const std::string& type, const std::string& summary) {
  NodeSpec s;
  s.type = type;
  s.kind = NodeKind::module;
  s.summary = summary;
  s.params = width_params();
  s.params.push_back(param::text("encoder", "enc", "id of the unet3d.encoder module whose frozen stages the adapter calls"));
  if (Kind == model::AdapterKind::reverse_attention_swin || Kind == model::AdapterKind::swin) {
    s.params.push_back(param::integers("heads", std::vector<std::int64_t>{2, 4, 4, 8, 8}, "attention heads of the Swin layer per level").length(5).min(1));
    s.params.push_back(param::integers("window", std::vector<std::int64_t>{1, 7, 7}, "Swin window as (Z, X, Y) extents").length(3).min(1));
  }
  s.params.push_back(param::integers("levels", std::vector<std::int64_t>{1, 2, 3, 4, 5},
                                     "levels (1-5) the adapter compensates; at the others F_i = Fcp (Table 5 ablation)")
                         .min(1)
                         .max(5));
  s.params.push_back(param::number("fuse_gamma", 1.0, "initial BatchNorm scale in each fuse_i; small (0.01) starts near the plain path (not released)")
                         .range(0, 10));
  s.inputs = {PortSpec{"incomplete", {{"image", 5, "(B, M, X, Y, Z)"}}, "the adapter path", true},
              PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "with incomplete: each group is its own batch", true},
              PortSpec{"auto", {{"image", 5, "(S*B, M, X, Y, Z)"}, {"present", 2, "(S, M)"}},
                       "complete subsets by the encoder's plain path, the others by the adapter", true}};
  s.outputs = level_keys();
  s.create = factory_of<AdapterNode<Kind>>();
  return s;
}

}  // namespace

void register_model_part_nodes(Registry& registry) {
  NodeSpec e;
  e.type = "unet3d.encoder";
  e.kind = NodeKind::module;
  e.summary = "UniMRSeg's 3D U-Net encoder: inc, down1..down3 (BatchNorm, ReLU) and the 3D ASPP; the authors' weight names.";
  e.params = width_params();
  e.params.push_back(param::integers("rates", std::vector<std::int64_t>{1, 6, 12, 18}, "ASPP dilation rates").min(1));
  e.params.push_back(param::boolean("freeze", false, "no gradient, no autograd (stage 3); the adapter always runs it so"));
  e.params.push_back(param::boolean("bn_update", true, "with freeze: calls in training still update the BatchNorm statistics (released)"));
  e.inputs = {PortSpec{"input", {{"image", 5, "(B, M, X, Y, Z)"}}, "the plain path"}};
  e.outputs = level_keys();
  e.create = factory_of<EncoderNode>();
  registry.add(std::move(e));

  NodeSpec d;
  d.type = "unet3d.decoder";
  d.kind = NodeKind::module;
  d.summary = "UniMRSeg's 3D U-Net decoder: up1..up4 and the 1x1x1 head outc; the authors' weight names.";
  d.params = {param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "the encoder's widths").length(4).min(1),
              param::integer("out_channels", 3, "output channels: 4 for the stage-1 reconstruction head, 3 for [TC, WT, ET]").min(1),
              param::boolean("centre_crop", true, "up1 upsamples the ASPP output and centre-crops it back to 1/8 (released); false: plain concat"),
              param::choice("head", "none", {"none", "relu"}, "activation of the output: relu for the stage-1 reconstruction")};
  d.inputs = {PortSpec{"features", level_keys(), "levels 1-5 (an encoder's or an adapter's)"},
              PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "each group of subsets is its own batch", true}};
  d.outputs = {{"logits", 5, "(B, out_channels, X, Y, Z)"}};
  d.create = factory_of<DecoderNode>();
  registry.add(std::move(d));

  using K = model::AdapterKind;
  registry.add(adapter_spec<K::reverse_attention_swin>(
      "unimrseg.adapter", "Reverse-attention adapter with a Swin layer per level (released): F = Fcp + (1 - sigmoid(mean swin(h))) h."));
  registry.add(adapter_spec<K::reverse_attention>("unimrseg.adapter_no_swin",
                                                  "Reverse-attention adapter without Swin: F = Fcp + (1 - sigmoid(mean h)) h (Table 4 ablation)."));
  registry.add(adapter_spec<K::swin>("unimrseg.adapter_no_ra",
                                     "Adapter with Swin but no reverse attention: F = Fcp + swin(h) (Table 4 ablation)."));
  registry.add(adapter_spec<K::conv>("unimrseg.adapter_conv", "Plain convolutional adapter: F = Fcp + h (Table 4 ablation)."));
}

}  // namespace umrflow::nodes
