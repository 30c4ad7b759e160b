// Generic losses and their combination.
#include <torch/torch.h>

#include "builtin.h"
#include "umrflow/node.h"

namespace umrflow::nodes {

namespace {

class MeanSquaredError final : public StepNode {
 public:
  explicit MeanSquaredError(const Params&) {}
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
  explicit BinaryCrossEntropy(const Params& p) : pos_weight_(p.get_number("pos_weight")) {}
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
  double pos_weight_;
};

class WeightedSum final : public StepNode {
 public:
  explicit WeightedSum(const Params& p) : weights_(p.get_numbers("weights")) {}
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

}  // namespace

void register_loss_nodes(Registry& registry) {
  NodeSpec mse;
  mse.type = "loss.mse";
  mse.kind = NodeKind::step;
  mse.summary = "Mean squared error between `pred` and `target` over all elements.";
  mse.inputs = {PortSpec{"pred", {{"pred", -1, "prediction"}}, "prediction"},
                PortSpec{"target", {{"target", -1, "same shape as pred"}}, "target"}};
  mse.outputs = {{"loss", 0, "scalar"}};
  mse.create = [](const Params& p) { return std::make_unique<MeanSquaredError>(p); };
  registry.add(std::move(mse));

  NodeSpec bce;
  bce.type = "loss.bce";
  bce.kind = NodeKind::step;
  bce.summary = "Binary cross-entropy of sigmoid(`pred`) against `target` in [0, 1], mean over all elements "
                "(BCEWithLogitsLoss; with loss.dice and loss.sum it makes MONAI's DiceCELoss).";
  bce.params = {param::number("pos_weight", 1.0, "weight of the positive term (1: plain BCE)").range(1e-3, 1e3)};
  bce.inputs = {PortSpec{"pred", {{"pred", -1, "logits"}}, "logits"},
                PortSpec{"target", {{"target", -1, "same shape as pred, values in [0, 1]"}}, "target"}};
  bce.outputs = {{"loss", 0, "scalar"}};
  bce.create = [](const Params& p) { return std::make_unique<BinaryCrossEntropy>(p); };
  registry.add(std::move(bce));

  NodeSpec sum;
  sum.type = "loss.sum";
  sum.kind = NodeKind::step;
  sum.summary = "Weighted sum of scalar losses: sum_i weights[i] * terms[i].";
  sum.params = {param::numbers("weights", std::vector<double>{}, "one weight per term; empty means all 1")};
  sum.inputs = {PortSpec{"terms", {{"loss", 0, "scalar"}}, "the losses to add", false, true}};
  sum.outputs = {{"loss", 0, "scalar"}};
  sum.create = [](const Params& p) { return std::make_unique<WeightedSum>(p); };
  registry.add(std::move(sum));
}

}  // namespace umrflow::nodes
