// The UniMRSeg network as a module node (`unimrseg.net`).
#include "builtin.h"
#include "model/unimrseg_net.h"
#include "umrflow/module.h"

namespace umrflow::nodes {

namespace {

using model::Levels;

class UniMRSegNetNode final : public ModuleNode {
 public:
  explicit UniMRSegNetNode(const Params& p) : net_(options(p)) {}
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
  static model::UniMRSegNetOptions options(const Params& p) {
    model::UniMRSegNetOptions o;
    o.in_channels = p.get_int("in_channels");
    o.out_channels = p.get_int("out_channels");
    o.widths = p.get_ints("widths");
    o.rates = p.get_ints("rates");
    o.centre_crop = p.get_bool("centre_crop");
    o.relu_head = p.get_text("head") == "relu";
    o.adapter = p.get_bool("adapter");
    o.heads = p.get_ints("heads");
    o.window = p.get_ints("window");
    o.fuse_gamma = p.get_number("fuse_gamma");
    o.freeze_encoder = p.get_bool("freeze_encoder");
    o.encoder_bn_update = p.get_bool("encoder_bn_update");
    o.freeze_decoder = p.get_bool("freeze_decoder");
    o.decoder_bn_incomplete = p.get_bool("decoder_bn_incomplete");
    return o;
  }

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
    std::vector<torch::Tensor> logits;
    std::array<std::vector<torch::Tensor>, 5> levels;
    for (const auto& [first, count] : model::group_rows(groups.at("group"), x.size(0))) {
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
    model::RowSplit split = model::split_complete_rows(present, x.size(0), net_->options.in_channels);
    if (!net_->options.adapter) {
      split.complete.insert(split.complete.end(), split.incomplete.begin(), split.incomplete.end());
      split.incomplete.clear();
    }
    torch::Tensor logits;
    Levels f;
    auto place = [&](const std::vector<std::int64_t>& idx, const torch::Tensor& y, const Levels& l) {
      model::place_rows(logits, y, idx, x.size(0));
      for (int i = 0; i < 5; ++i) model::place_rows(f[i], l[i], idx, x.size(0));
    };
    auto rows_of = [&](const std::vector<std::int64_t>& idx) { return x.index_select(0, torch::tensor(idx, torch::kLong).to(x.device())); };
    if (!split.complete.empty()) {
      const Levels l = net_->encode_complete(rows_of(split.complete));
      place(split.complete, net_->decode(l), l);
    }
    if (!split.incomplete.empty()) {
      const Levels l = net_->adapt(rows_of(split.incomplete));
      place(split.incomplete, net_->decode_incomplete(l), l);
    }
    return result(logits, f);
  }

  model::UniMRSegNet net_;
};

}  // namespace

void register_model_nodes(Registry& registry) {
  NodeSpec s;
  s.type = "unimrseg.net";
  s.kind = NodeKind::module;
  s.summary = "UniMRSeg 3D U-Net (BatchNorm, 3D ASPP) with the optional reverse-attention adapter; the authors' weight names.";
  s.params = {
      param::integer("in_channels", 4, "input modalities").min(1),
      param::integer("out_channels", 3, "output channels: 4 for the stage-1 reconstruction head, 3 for [TC, WT, ET]").min(1),
      param::integers("widths", std::vector<std::int64_t>{64, 128, 256, 512}, "encoder widths of inc, down1, down2, down3 (ASPP keeps the last)").length(4).min(1),
      param::integers("rates", std::vector<std::int64_t>{1, 6, 12, 18}, "ASPP dilation rates").min(1),
      param::boolean("centre_crop", true, "up1 upsamples the ASPP output and centre-crops it back to 1/8 resolution (released); false: plain concat at 1/8"),
      param::choice("head", "none", {"none", "relu"}, "activation of the output: relu for the stage-1 reconstruction"),
      param::boolean("adapter", false, "add the stage-3 reverse-attention adapter (port `incomplete`)"),
      param::integers("heads", std::vector<std::int64_t>{2, 4, 4, 8, 8}, "attention heads of the adapter's Swin layer per level").length(5).min(1),
      param::integers("window", std::vector<std::int64_t>{1, 7, 7}, "Swin window as (Z, X, Y) extents").length(3).min(1),
      param::number("fuse_gamma", 1.0,
                    "initial BatchNorm scale in each fuse_i; small (0.01) starts the adapter path near the plain path (not released)")
          .range(0, 10),
      param::boolean("freeze_encoder", false, "the encoder (inc..aspp) takes no gradient and runs without autograd (stage 3)"),
      param::boolean("encoder_bn_update", true,
                     "with freeze_encoder: the complete path still updates the encoder's BatchNorm statistics in training (released)"),
      param::boolean("freeze_decoder", false,
                     "the decoder (up1..outc) takes no gradient and keeps its loaded BatchNorm statistics: stage 3 trains the adapter alone (not released)"),
      param::boolean("decoder_bn_incomplete", true,
                     "the adapter path's batches use and update the decoder's BatchNorm statistics (released); false: running statistics"),
  };
  s.inputs = {
      PortSpec{"complete", {{"image", 5, "(B, M, X, Y, Z)"}}, "plain U-Net path", true},
      PortSpec{"incomplete", {{"image", 5, "(B, M, X, Y, Z)"}}, "adapter path (needs adapter: true)", true},
      PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "with incomplete: run each group as its own batch", true},
      PortSpec{"auto", {{"image", 5, "(S*B, M, X, Y, Z)"}, {"present", 2, "(S, M)"}},
               "complete subsets by the plain path, the others by the adapter", true},
  };
  s.outputs = {{"logits", 5, "(B, out_channels, X, Y, Z)"},
               {"features.1", 5, "level 1 (inc or F_1)"}, {"features.2", 5, "level 2"}, {"features.3", 5, "level 3"},
               {"features.4", 5, "level 4"}, {"features.5", 5, "level 5 (ASPP or F_5)"}};
  s.create = factory_of<UniMRSegNetNode>();
  registry.add(std::move(s));
}

}  // namespace umrflow::nodes
