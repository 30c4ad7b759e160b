// `loss.*`: generic losses, their combination, and the segmentation,
// reconstruction and contrastive losses of UniMRSeg (math in losses.cpp).
#include <limits>

#include <torch/torch.h>

#include "builtin.h"
#include "loss/losses.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"
#include "umrflow/step_checks.h"

namespace umrflow::nodes {

namespace {

class MeanSquaredError final : public StepNode {
 public:
  static void declare(Declaration<MeanSquaredError>& d) {
    d.type("loss.mse", NodeKind::step, "Mean squared error between `pred` and `target` over all elements.");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    d.input(PortSpec{"pred", {{"pred", -1, "prediction"}}, "prediction"});
    d.input(PortSpec{"target", {{"target", -1, "same shape as pred"}}, "target"});
    d.output({"loss", 0, "scalar"});
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const auto& pred = in.at(0).at("pred");
    const auto& target = in.at(1).at("target");
    if (pred.sizes() != target.sizes())
      throw std::runtime_error("pred has shape " + c10::str(pred.sizes()) + " but target has " + c10::str(target.sizes()));
    Packet out;
    out.tensors["loss"] = torch::mse_loss(pred, target.to(pred.dtype()));
    return out;
  }
};

/// Binary cross-entropy of sigmoid(pred) against a target in [0, 1], mean over
/// every element (torch's BCEWithLogitsLoss; the BCE half of MONAI's DiceCELoss
/// with sigmoid=True). `pos_weight` scales the positive term.
class BinaryCrossEntropy final : public StepNode {
 public:
  static void declare(Declaration<BinaryCrossEntropy>& d) {
    d.type("loss.bce", NodeKind::step,
           "Binary cross-entropy of sigmoid(`pred`) against `target` in [0, 1], mean over all elements "
           "(BCEWithLogitsLoss; with loss.dice and loss.sum it makes MONAI's DiceCELoss).");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    d.input(PortSpec{"pred", {{"pred", -1, "logits"}}, "logits"});
    d.input(PortSpec{"target", {{"target", -1, "same shape as pred, values in [0, 1]"}}, "target"});
    d.output({"loss", 0, "scalar"});
    d.param(&BinaryCrossEntropy::pos_weight_,
            param::number("pos_weight", 1.0, "weight of the positive term (1: plain BCE)").range(1e-3, 1e3));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const auto& pred = in.at(0).at("pred");
    const auto& target = in.at(1).at("target");
    if (pred.sizes() != target.sizes())
      throw std::runtime_error("pred has shape " + c10::str(pred.sizes()) + " but target has " + c10::str(target.sizes()));
    auto options = torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions();
    if (pos_weight_ != 1.0) options.pos_weight(torch::full({}, pos_weight_, pred.options()));
    Packet out;
    out.tensors["loss"] = torch::nn::functional::binary_cross_entropy_with_logits(pred, target.to(pred.dtype()), options);
    return out;
  }

 private:
  double pos_weight_ = 0;
};

class WeightedSum final : public StepNode {
 public:
  static void declare(Declaration<WeightedSum>& d) {
    d.type("loss.sum", NodeKind::step, "Weighted sum of scalar losses: sum_i weights[i] * terms[i].");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::linear);
    d.input(PortSpec{"terms", {{"loss", 0, "scalar"}}, "the losses to add", false, true});
    d.output({"loss", 0, "scalar"});
    d.param(&WeightedSum::weights_, param::numbers("weights", std::vector<double>{}, "one weight per term; empty means all 1"));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    if (!weights_.empty() && weights_.size() != in.size())
      throw std::runtime_error(std::to_string(weights_.size()) + " weights for " + std::to_string(in.size()) + " terms");
    torch::Tensor total;
    for (std::size_t i = 0; i < in.size(); ++i) {
      torch::Tensor term = in[i].at("loss") * (weights_.empty() ? 1.0 : weights_[i]);
      total = total.defined() ? total + term : term;
    }
    Packet out;
    out.tensors["loss"] = total;
    return out;
  }

 private:
  std::vector<double> weights_;
};

/// The ports of a loss over two inputs: `pred` needing key `a` and `target`
/// needing key `b` (no key when empty), and the scalar `loss`.
template <class T>
void pair_ports(Declaration<T>& d, const std::string& a, const std::string& b) {
  d.input(PortSpec{"pred", a.empty() ? std::vector<KeySpec>{} : std::vector<KeySpec>{{a, -1, ""}}, "first input"});
  d.input(PortSpec{"target", b.empty() ? std::vector<KeySpec>{} : std::vector<KeySpec>{{b, -1, ""}}, "second input"});
  d.output({"loss", 0, "scalar"});
}

/// The 2D SOD recipe's structure loss (loss::structure_loss).
class StructureNode final : public StepNode {
 public:
  static void declare(Declaration<StructureNode>& d) {
    d.type("loss.structure", NodeKind::step,
           "Weighted BCE + weighted IoU of a saliency map (the SOD recipe's structure loss): pixels near the mask's edges "
           "weigh up to 1 + boundary_weight; mean over images.");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    pair_ports(d, "pred", "target");  // (B, 1, H, W) logits and mask in [0, 1]
    d.param(&StructureNode::window_, param::integer("window", 31, "odd side of the square whose mean finds the edges").min(1));
    d.param(&StructureNode::boundary_weight_, param::number("boundary_weight", 5.0, "extra weight at the edges").min(0.0));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    Packet out;
    out.tensors["loss"] = loss::structure_loss(in.at(0).at("pred"), in.at(1).at("target"), window_, boundary_weight_);
    return out;
  }

 private:
  std::int64_t window_ = 0;
  double boundary_weight_ = 0;
};

/// A reference with B rows against a prediction with k*B rows (all subsets of
/// a batch, subset-major) is repeated k times; other mismatches are errors.
torch::Tensor tile_rows(const torch::Tensor& target, std::int64_t rows, const std::string& what) {
  if (target.dim() == 0 || target.size(0) == rows) return target;
  if (rows % target.size(0) != 0)
    throw std::runtime_error(what + ": the reference has " + std::to_string(target.size(0)) + " rows, which do not tile the " +
                             std::to_string(rows) + " rows of the prediction");
  std::vector<std::int64_t> reps(target.dim(), 1);
  reps[0] = rows / target.size(0);
  return target.repeat(reps);
}

class DiceNode final : public StepNode {
 public:
  static void declare(Declaration<DiceNode>& d) {
    d.type("loss.dice", NodeKind::step,
           "Soft Dice on sigmoid(pred) (MONAI DiceLoss, sigmoid=True, smoothing 1e-5, mean over samples and channels); "
           "a target of B rows is repeated over k*B prediction rows.");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    pair_ports(d, "pred", "target");
    d.param(&DiceNode::target_,
            param::choice("target", "label", {"label", "sigmoid_detached", "threshold_detached"},
                          "label: a (soft) mask; sigmoid_detached: logits of a reference prediction, sigmoid and no gradient "
                          "(released); threshold_detached: the reference binarised at sigmoid > 0.5"));
    d.param(&DiceNode::temperature_,
            param::number("temperature", 1.0,
                          "with a reference prediction: sigmoid(logits / temperature); below 1 sharpens the teacher (released: 1)")
                .range(1e-3, 100));
    d.param(&DiceNode::confidence_,
            param::number("confidence", 0.0,
                          "with a reference prediction: only voxels where |2 sigmoid - 1| >= confidence count (0: all, released)")
                .range(0, 1));
  }
  void setup() {
    soft_ = target_ == "sigmoid_detached";
    hard_ = target_ == "threshold_detached";
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor& pred = in.at(0).at("pred");
    torch::Tensor target = tile_rows(in.at(1).at("target"), pred.size(0), "dice"), weight;
    if (soft_ || hard_) {
      const torch::Tensor q = torch::sigmoid(target.detach().to(pred.dtype()) / temperature_);
      if (confidence_ > 0) weight = ((2 * q - 1).abs() >= confidence_).to(pred.dtype());
      target = soft_ ? q : (q > 0.5).to(pred.dtype());
    }
    Packet out;
    out.tensors["loss"] = loss::soft_dice(pred, target, weight);
    return out;
  }

 private:
  std::string target_;
  bool soft_ = false, hard_ = false;
  double temperature_ = 0, confidence_ = 0;
};

/// Multi-class cross-entropy of softmax(pred) over channels: against integer
/// labels (a class map with an ignored value and an offset, SUN-RGBD's raw
/// convention by default), or against softmax of a detached reference
/// prediction (the consistency term of stage 3).
class CrossEntropyNode final : public StepNode {
 public:
  static void declare(Declaration<CrossEntropyNode>& d) {
    d.type("loss.cross_entropy", NodeKind::step,
           "Cross-entropy of softmax(pred) over channels against a class map (pixels with ignore_label left out, class = "
           "label - label_offset; mean over the counted pixels, torch's CrossEntropyLoss) or against softmax of a detached "
           "reference; a target of B rows is repeated over k*B prediction rows.");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    pair_ports(d, "pred", "target");  // (N, C, H, W) logits; (B, 1, H, W) labels or (B, C, H, W) reference logits
    d.param(&CrossEntropyNode::target_,
            param::choice("target", "label", {"label", "softmax_detached"},
                          "label: an integer class map; softmax_detached: logits of a reference prediction, softmax and no gradient"));
    d.param(&CrossEntropyNode::ignore_label_, param::integer("ignore_label", 0, "label value left out (SUN-RGBD: 0, unlabelled)"));
    d.param(&CrossEntropyNode::offset_, param::integer("label_offset", 1, "class = label - label_offset (SUN-RGBD: 1)"));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    const torch::Tensor& pred = in.at(0).at("pred");
    const torch::Tensor target = tile_rows(in.at(1).at("target"), pred.size(0), "cross_entropy");
    if (pred.dim() < 2) throw std::runtime_error("cross_entropy: pred " + c10::str(pred.sizes()) + " has no class axis");
    Packet out;
    if (target_ == "softmax_detached") {
      if (target.sizes() != pred.sizes())
        throw std::runtime_error("cross_entropy: reference " + c10::str(target.sizes()) + " is not shaped as pred " + c10::str(pred.sizes()));
      const torch::Tensor q = torch::softmax(target.detach().to(pred.dtype()), 1);
      out.tensors["loss"] = -(q * torch::log_softmax(pred, 1)).sum(1).mean();
      return out;
    }
    if (target.dim() != pred.dim() || target.size(1) != 1 || target.sizes().slice(2) != pred.sizes().slice(2))
      throw std::runtime_error("cross_entropy: labels " + c10::str(target.sizes()) + " do not match pred " + c10::str(pred.sizes()) +
                               " (expected one channel of the same size)");
    // Value checks are read on the host only where that costs no wait
    // (umrflow/step_checks.h); meanwhile a rejected pixel is left out, and a
    // message keeps a 0-dim tensor, not the label map.
    const torch::Tensor raw = target.squeeze(1).to(torch::kLong);
    const torch::Tensor ignored = raw == ignore_label_;
    const torch::Tensor cls = (raw - offset_).masked_fill(ignored, -100);
    const std::int64_t classes = pred.size(1), offset = offset_;
    const torch::Tensor outside = ~ignored & ((cls < 0) | (cls >= classes));
    torch::Tensor rejected = outside;
    if (target.is_floating_point()) {
      const torch::Tensor fractional = ((target != target.round()) | ~torch::isfinite(target)).squeeze(1);
      check_on_host(fractional, [] { return std::string("cross_entropy: labels must be finite whole numbers (a class map, resized by nearest neighbour)"); });
      rejected = outside | fractional;
    }
    const torch::Tensor example = raw.numel() == 0 ? raw.new_zeros({}) : torch::where(outside, raw, std::numeric_limits<std::int64_t>::max()).amin();
    check_on_host(outside, [example, classes, offset] {
      return "cross_entropy: label " + std::to_string(example.item<std::int64_t>()) + " is outside " + std::to_string(offset) + ".." +
             std::to_string(offset + classes - 1) + " for " + std::to_string(classes) + " classes (check classes, label_offset and ignore_label)";
    });
    // torch's mean over the counted pixels, as their sum over a count of at
    // least 1: no counted pixel gives a zero that keeps the graph, not 0 / 0.
    namespace F = torch::nn::functional;
    const torch::Tensor sum =
        F::cross_entropy(pred, cls.masked_fill(rejected, -100), F::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
    out.tensors["loss"] = sum / (~ignored & ~rejected).sum().clamp_min(1).to(sum.dtype());
    return out;
  }

 private:
  std::string target_;
  std::int64_t ignore_label_ = 0, offset_ = 0;
};

class SsimNode final : public StepNode {
 public:
  static void declare(Declaration<SsimNode>& d) {
    d.type("loss.ssim", NodeKind::step,
           "1 - SSIM in 3D or 2D by the tensors' rank (MONAI 1.2 SSIMLoss: Gaussian window, valid convolution), mean over samples.");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    pair_ports(d, "pred", "target");
    d.param(&SsimNode::win_, param::integer("window", 11, "window side").min(1));
    d.param(&SsimNode::sigma_, param::number("sigma", 1.5, "Gaussian sigma").min(0.01));
    d.param(&SsimNode::range_, param::number("data_range", 1.0, "value range of the images").min(1e-9));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    Packet out;
    out.tensors["loss"] = loss::ssim(in.at(0).at("pred"), in.at(1).at("target"), win_, sigma_, range_);
    return out;
  }

 private:
  std::int64_t win_ = 0;
  double sigma_ = 0, range_ = 0;
};

/// `key` of a packet, or its only tensor (an input bound as `node.key`).
const torch::Tensor& only(const Packet& p, const std::string& key) {
  if (p.has(key) || p.tensors.size() != 1) return p.at(key);
  return p.tensors.begin()->second;
}

/// Mean absolute error; over the listed keys of two packets (summed), or
/// `pred` against `target` when `keys` is empty. `detach_target` stops the
/// gradient through the second input (consistency against a fixed reference).
class L1Node final : public StepNode {
 public:
  static void declare(Declaration<L1Node>& d) {
    d.type("loss.l1", NodeKind::step,
           "Mean absolute error of pred against target, or summed over `keys` of two packets (feature consistency).");
    d.sharding(Sharding::per_batch);
    d.rows(RowRule::mean);
    pair_ports(d, "", "");
    d.param(&L1Node::keys_, param::texts("keys", std::vector<std::string>{}, "keys compared level by level; empty: pred vs target"));
    d.param(&L1Node::detach_, param::boolean("detach_target", false, "no gradient through the second input"));
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    torch::Tensor total;
    auto add = [&](const torch::Tensor& a, torch::Tensor b, const std::string& what) {
      b = tile_rows(b, a.size(0), "l1 '" + what + "'");
      if (a.sizes() != b.sizes()) throw std::runtime_error("l1: '" + what + "' shapes " + c10::str(a.sizes()) + " and " + c10::str(b.sizes()) + " differ");
      if (detach_) b = b.detach();
      torch::Tensor l = (a - b).abs().mean();
      total = total.defined() ? total + l : l;
    };
    if (keys_.empty()) add(only(in.at(0), "pred"), only(in.at(1), "target"), "pred");
    else
      for (const auto& k : keys_) add(in.at(0).at(k), in.at(1).at(k), k);
    Packet out;
    out.tensors["loss"] = total;
    return out;
  }

 private:
  std::vector<std::string> keys_;
  bool detach_ = false;
};

/// NT-Xent summed over feature levels: each level is global-average-pooled
/// over its spatial axes and L2-normalised. With a batch of one there are no
/// negatives and the loss is 0, as the released trainer then skips the term.
class NtXentNode final : public StepNode {
 public:
  static void declare(Declaration<NtXentNode>& d) {
    d.type("loss.nt_xent", NodeKind::step,
           "NT-Xent between complete and missing views, summed over feature levels (GAP + L2 norm per level).");
    d.sharding(Sharding::per_batch);
    pair_ports(d, "", "");
    d.param(&NtXentNode::keys_,
            param::texts("keys", std::vector<std::string>{"features.1", "features.2", "features.3", "features.4", "features.5"},
                         "feature levels"));
    d.param(&NtXentNode::temperature_, param::number("temperature", 0.5, "temperature").min(1e-6));
    d.param(&NtXentNode::variant_,
            param::choice("variant", "code", {"code", "paper"}, "code: positive not in the denominator (released); paper: Eq. 1"));
    d.param(&NtXentNode::pairing_,
            param::choice("pairing", "rows", {"rows", "halves"},
                          "rows: input 1 complete, input 2 missing, row i paired; halves: each input is (complete, missing) of one "
                          "sample (stage 2: body on (A, A'), key encoder on (B, B'))"));
  }
  void setup() {
    paper_ = variant_ == "paper";
    halves_ = pairing_ == "halves";
  }

  Packet run(const std::vector<Packet>& in, Context&) override {
    torch::Tensor total = torch::zeros({}, torch::kFloat32);
    for (const auto& k : keys_) {
      auto pool = [&](const torch::Tensor& f) {
        return torch::nn::functional::normalize(f.dim() > 2 ? f.flatten(2).mean(2) : f,
                                                torch::nn::functional::NormalizeFuncOptions().dim(1));
      };
      torch::Tensor a = pool(in.at(0).at(k)), b = pool(in.at(1).at(k));
      if (halves_) {
        // Each input holds one sample's (complete, missing) views: regroup as
        // the complete rows of both against their missing rows.
        if (a.size(0) % 2 || a.sizes() != b.sizes()) throw std::runtime_error("nt_xent: pairing halves needs two inputs of 2k rows");
        const std::int64_t h = a.size(0) / 2;
        const torch::Tensor complete = torch::cat({a.narrow(0, 0, h), b.narrow(0, 0, h)});
        const torch::Tensor missing = torch::cat({a.narrow(0, h, h), b.narrow(0, h, h)});
        a = complete;
        b = missing;
      }
      if (a.size(0) < 2) continue;
      total = total.to(a.device()) + loss::nt_xent(a, b, temperature_, paper_);
    }
    Packet out;
    out.tensors["loss"] = total;
    return out;
  }

 private:
  std::vector<std::string> keys_;
  double temperature_ = 0;
  std::string variant_, pairing_;
  bool paper_ = false, halves_ = false;
};

}  // namespace

void register_loss_nodes(Registry& registry) {
  add_nodes<MeanSquaredError, BinaryCrossEntropy, CrossEntropyNode, StructureNode, WeightedSum, DiceNode, SsimNode, L1Node, NtXentNode>(registry);
}

}  // namespace umrflow::nodes
