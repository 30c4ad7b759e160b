// The UniMRSeg network as one module node (`unimrseg.net`), and its adapter as
// separate module nodes: `unimrseg.adapter`, `unimrseg.adapter_no_swin`,
// `unimrseg.adapter_no_ra`, `unimrseg.adapter_conv` (unimrseg_parts.h), each
// linked to a `unet3d.encoder` module (unet3d/unet3d_nodes.cpp) whose stages
// it calls. Encoder, adapter and `unet3d.decoder` composed in a step graph
// compute what `unimrseg.net` computes, with checkpoint keys `ID.<authors' name>`.
#include "builtin.h"
#include "umrflow/declare.h"
#include "umrflow/module.h"
#include "unet3d/unet3d_nodes.h"
#include "unimrseg/unimrseg_net.h"

namespace umrflow::nodes {

namespace {

const char* const kGroupBn =
    "with `groups`: loop runs each group as its own batch (released); batched runs all groups in one pass with BatchNorm "
    "statistics per group (the same result, fewer and larger kernels; groups of equal size)";

using model::Levels;

class UniMRSegNetNode final : public ModuleNode {
 public:
  static void declare(Declaration<UniMRSegNetNode>& d) {
    using O = model::UniMRSegNetOptions;
    using N = UniMRSegNetNode;
    d.type("unimrseg.net", NodeKind::module,
           "UniMRSeg 3D U-Net (BatchNorm, 3D ASPP) with the optional reverse-attention adapter; the authors' weight names.");
    d.input(PortSpec{"complete", {{"image", 5, "(B, M, X, Y, Z)"}}, "plain U-Net path", true});
    d.input(PortSpec{"incomplete", {{"image", 5, "(B, M, X, Y, Z)"}}, "adapter path (needs adapter: true)", true});
    d.input(PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "with incomplete: run each group as its own batch", true});
    d.input(PortSpec{"auto", {{"image", 5, "(S*B, M, X, Y, Z)"}, {"present", 2, "(S, M)"}},
                     "complete subsets by the plain path, the others by the adapter", true});
    d.output({"logits", 5, "(B, out_channels, X, Y, Z)"});
    d.output({"features.1", 5, "level 1 (inc or F_1)"});
    d.output({"features.2", 5, "level 2"});
    d.output({"features.3", 5, "level 3"});
    d.output({"features.4", 5, "level 4"});
    d.output({"features.5", 5, "level 5 (ASPP or F_5)"});
    d.param(&N::options_, &O::in_channels, param::integer("in_channels", 4, "input modalities").min(1));
    d.param(&N::options_, &O::out_channels,
            param::integer("out_channels", 3, "output channels: 4 for the stage-1 reconstruction head, 3 for [TC, WT, ET]").min(1));
    d.param(&N::options_, &O::widths,
            param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "encoder widths of inc, down1, down2, down3 (ASPP keeps the last)")
                .length(4)
                .min(1));
    d.param(&N::options_, &O::rates, param::integers("rates", std::vector<std::int64_t>{1, 6, 12, 18}, "ASPP dilation rates").min(1));
    d.param(&N::options_, &O::centre_crop,
            param::boolean("centre_crop", true,
                           "up1 upsamples the ASPP output and centre-crops it back to 1/8 resolution (released); false: plain concat at 1/8"));
    d.param(&N::head_, param::choice("head", "none", {"none", "relu"}, "activation of the output: relu for the stage-1 reconstruction"));
    d.param(&N::options_, &O::adapter, param::boolean("adapter", false, "add the stage-3 reverse-attention adapter (port `incomplete`)"));
    d.param(&N::options_, &O::heads,
            param::integers("heads", std::vector<std::int64_t>{2, 4, 4, 8, 8}, "attention heads of the adapter's Swin layer per level").length(5).min(1));
    d.param(&N::options_, &O::window,
            param::integers("window", std::vector<std::int64_t>{1, 7, 7}, "Swin window as (Z, X, Y) extents").length(3).min(1));
    d.param(&N::options_, &O::fuse_gamma,
            param::number("fuse_gamma", 1.0,
                          "initial BatchNorm scale in each fuse_i; small (0.01) starts the adapter path near the plain path (not released)")
                .range(0, 10));
    d.param(&N::options_, &O::freeze_encoder,
            param::boolean("freeze_encoder", false, "the encoder (inc..aspp) takes no gradient and runs without autograd (stage 3)"));
    d.param(&N::options_, &O::encoder_bn_update,
            param::boolean("encoder_bn_update", true,
                           "with freeze_encoder: the complete path still updates the encoder's BatchNorm statistics in training (released)"));
    d.param(&N::options_, &O::freeze_decoder,
            param::boolean("freeze_decoder", false,
                           "the decoder (up1..outc) takes no gradient and keeps its loaded BatchNorm statistics: stage 3 trains the adapter alone (not released)"));
    d.param(&N::options_, &O::decoder_bn_incomplete,
            param::boolean("decoder_bn_incomplete", true,
                           "the adapter path's batches use and update the decoder's BatchNorm statistics (released); false: running statistics"));
    d.param(&N::group_bn_, param::choice("group_bn", "loop", {"loop", "batched"}, kGroupBn));
  }
  void setup() {
    options_.relu_head = head_ == "relu";
    net_ = model::UniMRSegNet(options_);
  }

  torch::nn::Module& module() override { return *net_; }

  Packet forward(const std::vector<Packet>& in, Context&) override {
    const Packet &complete = in.at(0), &incomplete = in.at(1), &groups = in.at(2), &automatic = in.at(3);
    const int bound = !complete.tensors.empty() + !incomplete.tensors.empty() + !automatic.tensors.empty();
    if (bound != 1) throw std::runtime_error("bind exactly one of the ports complete, incomplete and auto (" + std::to_string(bound) + " bound)");
    if (!complete.tensors.empty()) {
      const torch::Tensor& x = checked(complete.at("image"));
      const Levels f = net_->encode_complete(x);
      return result(net_->decode(f), f);
    }
    if (!incomplete.tensors.empty()) return run_incomplete(checked(incomplete.at("image")), groups);
    return run_auto(checked(automatic.at("image")), automatic.at("present"));
  }

 private:
  const torch::Tensor& checked(const torch::Tensor& x) const { return model::checked_volume(x, net_->options.in_channels); }

  static Packet result(const torch::Tensor& logits, const Levels& f) {
    Packet out;
    out.tensors["logits"] = logits;
    for (int i = 0; i < 5; ++i) out.tensors["features." + std::to_string(i + 1)] = f[i];
    return out;
  }

  /// Adapter path; with `groups` (the `group` output of modality.subsets) each
  /// run of subsets sharing a group goes through the network as its own batch,
  /// as the released stage-3 trainer does (BatchNorm statistics per group).
  Packet run_incomplete(const torch::Tensor& x, const Packet& groups) {
    if (groups.tensors.empty()) {
      const Levels f = net_->adapt(x);
      return result(net_->decode_incomplete(f), f);
    }
    const auto ranges = model::group_rows(groups.at("group"), x.size(0));
    if (group_bn_ == "batched") {
      model::BatchNormGroups scope(model::equal_groups(ranges));
      const Levels f = net_->adapt(x);
      return result(net_->decode_incomplete(f), f);
    }
    std::vector<torch::Tensor> logits;
    std::array<std::vector<torch::Tensor>, 5> levels;
    for (const auto& [first, count] : ranges) {
      const Levels f = net_->adapt(x.narrow(0, first, count));
      logits.push_back(net_->decode_incomplete(f));
      for (int i = 0; i < 5; ++i) levels[i].push_back(f[i]);
    }
    Levels f;
    for (int i = 0; i < 5; ++i) f[i] = torch::cat(levels[i]);
    return result(torch::cat(logits), f);
  }

  /// Complete subsets through the plain path, the others through the adapter
  /// (when there is one): what evaluation over all subsets needs.
  Packet run_auto(const torch::Tensor& x, const torch::Tensor& present) {
    auto outputs = [](const torch::Tensor& logits, const Levels& l) { return std::vector<torch::Tensor>{logits, l[0], l[1], l[2], l[3], l[4]}; };
    const model::RowsFn complete = [&](const torch::Tensor& rows) {
      const Levels l = net_->encode_complete(rows);
      return outputs(net_->decode(l), l);
    };
    model::RowsFn incomplete;
    if (net_->options.adapter) incomplete = [&](const torch::Tensor& rows) {
        const Levels l = net_->adapt(rows);
        return outputs(net_->decode_incomplete(l), l);
      };
    const std::vector<torch::Tensor> o = model::route_by_subset(x, present, net_->options.in_channels, complete, incomplete);
    return result(o[0], Levels{o[1], o[2], o[3], o[4], o[5]});
  }

  model::UniMRSegNetOptions options_;
  std::string head_;
  std::string group_bn_;
  model::UniMRSegNet net_{nullptr};
};

using K = model::AdapterKind;

/// The registered name and summary of each adapter kind.
struct AdapterType {
  const char* name;
  const char* summary;
};
AdapterType adapter_type(K kind) {
  switch (kind) {
    case K::reverse_attention_swin:
      return {"unimrseg.adapter", "Reverse-attention adapter with a Swin layer per level (released): F = Fcp + (1 - sigmoid(mean swin(h))) h."};
    case K::reverse_attention:
      return {"unimrseg.adapter_no_swin", "Reverse-attention adapter without Swin: F = Fcp + (1 - sigmoid(mean h)) h (Table 4 ablation)."};
    case K::swin:
      return {"unimrseg.adapter_no_ra", "Adapter with Swin but no reverse attention: F = Fcp + swin(h) (Table 4 ablation)."};
    case K::conv:
      break;
  }
  return {"unimrseg.adapter_conv", "Plain convolutional adapter: F = Fcp + h (Table 4 ablation)."};
}

template <K Kind>
class AdapterNode final : public ModuleNode {
 public:
  static void declare(Declaration<AdapterNode>& d) {
    using O = model::UniMRSegAdapterOptions;
    const AdapterType t = adapter_type(Kind);
    d.type(t.name, NodeKind::module, t.summary);
    d.input(PortSpec{"incomplete", {{"image", 5, "(B, M, X, Y, Z)"}}, "the adapter path", true});
    d.input(PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "with incomplete: each group is its own batch", true});
    d.input(PortSpec{"auto", {{"image", 5, "(S*B, M, X, Y, Z)"}, {"present", 2, "(S, M)"}},
                     "complete subsets by the encoder's plain path, the others by the adapter", true});
    for (KeySpec& k : level_keys()) d.output(std::move(k));
    d.param(&AdapterNode::options_, &O::in_channels, param::integer("in_channels", 4, "input modalities").min(1));
    d.param(&AdapterNode::options_, &O::widths,
            param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "encoder widths of inc, down1, down2, down3 (ASPP keeps the last)")
                .length(4)
                .min(1));
    d.param(&AdapterNode::encoder_id_, param::text("encoder", "enc", "id of the unet3d.encoder module whose frozen stages the adapter calls"));
    if (Kind == K::reverse_attention_swin || Kind == K::swin) {
      d.param(&AdapterNode::options_, &O::heads,
              param::integers("heads", std::vector<std::int64_t>{2, 4, 4, 8, 8}, "attention heads of the Swin layer per level").length(5).min(1));
      d.param(&AdapterNode::options_, &O::window,
              param::integers("window", std::vector<std::int64_t>{1, 7, 7}, "Swin window as (Z, X, Y) extents").length(3).min(1));
    }
    d.param(&AdapterNode::options_, &O::levels,
            param::integers("levels", std::vector<std::int64_t>{1, 2, 3, 4, 5},
                            "levels (1-5) the adapter compensates; at the others F_i = Fcp (Table 5 ablation)")
                .min(1)
                .max(5));
    d.param(&AdapterNode::options_, &O::fuse_gamma,
            param::number("fuse_gamma", 1.0, "initial BatchNorm scale in each fuse_i; small (0.01) starts near the plain path (not released)")
                .range(0, 10));
    d.param(&AdapterNode::group_bn_, param::choice("group_bn", "loop", {"loop", "batched"}, kGroupBn));
  }
  void setup() {
    options_.kind = Kind;
    adapter_ = model::UniMRSegAdapter(options_);
  }

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
    const auto ranges = model::group_rows(groups.at("group"), x.size(0));
    if (group_bn_ == "batched") {
      model::BatchNormGroups scope(model::equal_groups(ranges));
      return levels_packet(adapter_->adapt(x, encoder_->encoder()));
    }
    std::array<std::vector<torch::Tensor>, 5> levels;
    for (const auto& [first, count] : ranges) {
      const Levels f = adapter_->adapt(x.narrow(0, first, count), encoder_->encoder());
      for (int i = 0; i < 5; ++i) levels[i].push_back(f[i]);
    }
    Levels f;
    for (int i = 0; i < 5; ++i) f[i] = torch::cat(levels[i]);
    return levels_packet(f);
  }

 private:
  /// Complete subsets through the encoder's plain path, the others through the
  /// adapter: the levels evaluation over all subsets hands the decoder.
  Packet run_auto(const torch::Tensor& image, const torch::Tensor& present) {
    const torch::Tensor& x = model::checked_volume(image, adapter_->options.in_channels);
    auto outputs = [](const Levels& l) { return std::vector<torch::Tensor>(l.begin(), l.end()); };
    const std::vector<torch::Tensor> o = model::route_by_subset(
        x, present, x.size(1), [&](const torch::Tensor& rows) { return outputs(encoder_->encode(rows)); },
        [&](const torch::Tensor& rows) { return outputs(adapter_->adapt(rows, encoder_->encoder())); });
    return levels_packet(Levels{o[0], o[1], o[2], o[3], o[4]});
  }

  model::UniMRSegAdapterOptions options_;
  std::string group_bn_;
  std::string encoder_id_;
  EncoderNode* encoder_ = nullptr;
  model::UniMRSegAdapter adapter_{nullptr};
};

}  // namespace

void register_unimrseg_nodes(Registry& registry) {
  add_nodes<UniMRSegNetNode, AdapterNode<K::reverse_attention_swin>, AdapterNode<K::reverse_attention>, AdapterNode<K::swin>,
            AdapterNode<K::conv>>(registry);
}

}  // namespace umrflow::nodes
