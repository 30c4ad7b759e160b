// Segmentation, reconstruction and contrastive losses of UniMRSeg.
#include <torch/torch.h>

#include "builtin.h"
#include "loss/losses.h"
#include "umrflow/node.h"

namespace umrflow::loss {

namespace F = torch::nn::functional;

torch::Tensor soft_dice(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& weight) {
  if (logits.sizes() != target.sizes())
    throw std::runtime_error("dice: prediction " + c10::str(logits.sizes()) + " and target " + c10::str(target.sizes()) + " differ");
  std::vector<std::int64_t> spatial;
  for (std::int64_t a = 2; a < logits.dim(); ++a) spatial.push_back(a);
  torch::Tensor p = torch::sigmoid(logits);
  torch::Tensor g = target.to(p.dtype());
  if (weight.defined()) {
    p = p * weight;
    g = g * weight;
  }
  const torch::Tensor inter = (p * g).sum(spatial);
  const torch::Tensor denom = p.sum(spatial) + g.sum(spatial);
  return (1.0 - (2.0 * inter + 1e-5) / (denom + 1e-5)).mean();
}

torch::Tensor ssim_3d(const torch::Tensor& pred, const torch::Tensor& target, std::int64_t win, double sigma, double data_range) {
  if (pred.dim() != 5 || pred.sizes() != target.sizes())
    throw std::runtime_error("ssim: expects two (B, C, X, Y, Z) tensors of one shape, got " + c10::str(pred.sizes()) + " and " +
                             c10::str(target.sizes()));
  for (std::int64_t a = 2; a < 5; ++a)
    if (pred.size(a) < win)
      throw std::runtime_error("ssim: spatial size " + c10::str(pred.sizes()) + " is smaller than the " + std::to_string(win) + "^3 window");
  const auto c = pred.size(1);
  torch::Tensor g = torch::arange(win, pred.options()) - (win - 1) / 2.0;
  g = torch::exp(-(g * g) / (2 * sigma * sigma));
  g = g / g.sum();
  const torch::Tensor kernel = (g.view({win, 1, 1}) * g.view({1, win, 1}) * g.view({1, 1, win})).expand({c, 1, win, win, win}).contiguous();
  auto blur = [&](const torch::Tensor& x) { return F::conv3d(x, kernel, F::Conv3dFuncOptions().groups(c)); };
  const double c1 = std::pow(0.01 * data_range, 2), c2 = std::pow(0.03 * data_range, 2);
  const torch::Tensor y = target.to(pred.dtype());
  const torch::Tensor mx = blur(pred), my = blur(y);
  const torch::Tensor sxx = blur(pred * pred) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(pred * y) - mx * my;
  const torch::Tensor map = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * ((2 * sxy + c2) / (sxx + syy + c2));
  return (1.0 - map.flatten(1).mean(1)).mean();
}

torch::Tensor nt_xent(const torch::Tensor& complete, const torch::Tensor& missing, double temperature, bool paper_variant) {
  if (complete.dim() != 2 || complete.sizes() != missing.sizes())
    throw std::runtime_error("nt_xent: expects two (B, D) tensors of one shape");
  const auto b = complete.size(0);
  const torch::Tensor rows = torch::stack({complete, missing}, 1).reshape({2 * b, complete.size(1)});  // A, A', B, B', ...
  const torch::Tensor sim = torch::exp(torch::matmul(rows, rows.t()) / temperature);
  const torch::Tensor idx = torch::arange(2 * b, torch::kLong);
  const torch::Tensor partner = idx + 1 - 2 * (idx % 2);
  const torch::Tensor sample_of = torch::div(idx, 2, "floor");  // integer division (plain / is true division)
  const torch::Tensor same_sample = sample_of.view({-1, 1}) == sample_of.view({1, -1});
  const torch::Tensor self = torch::eye(2 * b, torch::kBool);
  const torch::Tensor in_denominator = paper_variant ? ~self : ~same_sample;
  const torch::Tensor pos = sim.gather(1, partner.view({-1, 1})).view({-1});
  const torch::Tensor denom = (sim * in_denominator.to(sim.dtype())).sum(1);
  return (-torch::log(pos / denom)).mean();
}

}  // namespace umrflow::loss

namespace umrflow::nodes {

namespace {

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
  explicit DiceNode(const Params& p)
      : soft_(p.get_text("target") == "sigmoid_detached"),
        hard_(p.get_text("target") == "threshold_detached"),
        temperature_(p.get_number("temperature")),
        confidence_(p.get_number("confidence")) {}
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
  bool soft_, hard_;
  double temperature_, confidence_;
};

class SsimNode final : public StepNode {
 public:
  explicit SsimNode(const Params& p) : win_(p.get_int("window")), sigma_(p.get_number("sigma")), range_(p.get_number("data_range")) {}
  Packet run(const std::vector<Packet>& in, Context&) override {
    Packet out;
    out.tensors["loss"] = loss::ssim_3d(in.at(0).at("pred"), in.at(1).at("target"), win_, sigma_, range_);
    return out;
  }

 private:
  std::int64_t win_;
  double sigma_, range_;
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
  explicit L1Node(const Params& p) : keys_(p.get_texts("keys")), detach_(p.get_bool("detach_target")) {}
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
  bool detach_;
};

/// NT-Xent summed over feature levels: each level is global-average-pooled
/// over its spatial axes and L2-normalised. With a batch of one there are no
/// negatives and the loss is 0, as the released trainer then skips the term.
class NtXentNode final : public StepNode {
 public:
  explicit NtXentNode(const Params& p)
      : keys_(p.get_texts("keys")), temperature_(p.get_number("temperature")), paper_(p.get_text("variant") == "paper"),
        halves_(p.get_text("pairing") == "halves") {}
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
  double temperature_;
  bool paper_, halves_;
};

NodeSpec pair_spec(const std::string& type, const std::string& summary, std::vector<ParamSpec> params, const std::string& a,
                   const std::string& b) {
  NodeSpec s;
  s.type = type;
  s.kind = NodeKind::step;
  s.summary = summary;
  s.params = std::move(params);
  s.inputs = {PortSpec{"pred", a.empty() ? std::vector<KeySpec>{} : std::vector<KeySpec>{{a, -1, ""}}, "first input"},
              PortSpec{"target", b.empty() ? std::vector<KeySpec>{} : std::vector<KeySpec>{{b, -1, ""}}, "second input"}};
  s.outputs = {{"loss", 0, "scalar"}};
  return s;
}

}  // namespace

void register_unimrseg_loss_nodes(Registry& registry) {
  auto add = [&](NodeSpec s, NodeFactory f) {
    s.create = std::move(f);
    registry.add(std::move(s));
  };
  add(pair_spec("loss.dice", "Soft Dice on sigmoid(pred) (MONAI DiceLoss, sigmoid=True, smoothing 1e-5, mean over samples and channels); "
                "a target of B rows is repeated over k*B prediction rows.",
                {param::choice("target", "label", {"label", "sigmoid_detached", "threshold_detached"},
                               "label: a (soft) mask; sigmoid_detached: logits of a reference prediction, sigmoid and no gradient "
                               "(released); threshold_detached: the reference binarised at sigmoid > 0.5"),
                 param::number("temperature", 1.0,
                               "with a reference prediction: sigmoid(logits / temperature); below 1 sharpens the teacher (released: 1)")
                     .range(1e-3, 100),
                 param::number("confidence", 0.0,
                               "with a reference prediction: only voxels where |2 sigmoid - 1| >= confidence count (0: all, released)")
                     .range(0, 1)},
                "pred", "target"),
      factory_of<DiceNode>());
  add(pair_spec("loss.ssim", "1 - SSIM in 3D (MONAI 1.2 SSIMLoss: Gaussian window, valid convolution), mean over samples.",
                {param::integer("window", 11, "window side").min(1), param::number("sigma", 1.5, "Gaussian sigma").min(0.01),
                 param::number("data_range", 1.0, "value range of the images").min(1e-9)},
                "pred", "target"),
      factory_of<SsimNode>());
  add(pair_spec("loss.l1", "Mean absolute error of pred against target, or summed over `keys` of two packets (feature consistency).",
                {param::texts("keys", std::vector<std::string>{}, "keys compared level by level; empty: pred vs target"),
                 param::boolean("detach_target", false, "no gradient through the second input")},
                "", ""),
      factory_of<L1Node>());
  add(pair_spec("loss.nt_xent", "NT-Xent between complete and missing views, summed over feature levels (GAP + L2 norm per level).",
                {param::texts("keys", std::vector<std::string>{"features.1", "features.2", "features.3", "features.4", "features.5"},
                              "feature levels"),
                 param::number("temperature", 0.5, "temperature").min(1e-6),
                 param::choice("variant", "code", {"code", "paper"}, "code: positive not in the denominator (released); paper: Eq. 1"),
                 param::choice("pairing", "rows", {"rows", "halves"},
                               "rows: input 1 complete, input 2 missing, row i paired; halves: each input is (complete, missing) of one "
                               "sample (stage 2: body on (A, A'), key encoder on (B, B'))")},
                "", ""),
      factory_of<NtXentNode>());
}

}  // namespace umrflow::nodes
