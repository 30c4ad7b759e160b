// `tensor.*`: augmentations that work on tensors of any rank.
#include <torch/torch.h>

#include "builtin.h"
#include "umrflow/declare.h"
#include "umrflow/node.h"

namespace umrflow::nodes {

namespace {

class GaussianNoise final : public SampleNode {
 public:
  static void declare(Declaration<GaussianNoise>& d) {
    d.type("tensor.gaussian_noise", NodeKind::sample, "Adds N(0, std^2) noise to `image`.");
    d.input({"in", {{"image", -1, "tensor to perturb"}}, "the sample"});
    d.param(&GaussianNoise::std_, param::number("std", 0.1, "standard deviation of the noise").min(0.0));
  }

  void apply(Packet& s, Context& ctx) override {
    auto& x = s.at("image");
    x = x + std_ * torch::randn(x.sizes(), ctx.generator());
  }

 private:
  double std_ = 0;
};

/// Flips every tensor of the sample along each listed axis with probability p
/// (one draw per axis, shared by all tensors so image and target stay aligned).
class RandomFlip final : public SampleNode {
 public:
  static void declare(Declaration<RandomFlip>& d) {
    d.type("tensor.random_flip", NodeKind::sample,
           "Flips every tensor of a sample along each listed axis with probability p (one draw per axis).");
    d.input({"in", {}, "the sample"});
    d.param(&RandomFlip::axes_,
            param::integers("axes", std::vector<std::int64_t>{1, 2, 3}, "axes of the per-sample tensors (0 is channels)").min(0));
    d.param(&RandomFlip::p_, param::number("p", 0.5, "probability of flipping each axis").range(0.0, 1.0));
  }

  void apply(Packet& s, Context& ctx) override {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::int64_t> flip;
    for (auto a : axes_)
      if (u(ctx.engine()) < p_) flip.push_back(a);
    if (flip.empty()) return;
    for (auto& [key, t] : s.tensors) {
      for (auto a : flip)
        if (a >= t.dim()) throw std::runtime_error("axis " + std::to_string(a) + " is out of range for '" + key + "' of rank " + std::to_string(t.dim()));
      t = t.flip(flip);
    }
  }

 private:
  std::vector<std::int64_t> axes_;
  double p_ = 0;
};

/// Copies one tensor of a sample under another name: the unperturbed image as
/// a reconstruction target before the modality nodes change `image`.
class CopyTensor final : public SampleNode {
 public:
  static void declare(Declaration<CopyTensor>& d) {
    d.type("tensor.copy", NodeKind::sample, "Copies the sample's tensor `from` to `to` (a reconstruction target before perturbation).");
    d.input({"in", {}, "the sample"});
    d.outputs_for([](const Params& p) { return std::vector<KeySpec>{{p.has("to") ? p.get_text("to") : "target", -1, "the copy"}}; });
    d.param(&CopyTensor::from_, param::text("from", "image", "the tensor to copy"));
    d.param(&CopyTensor::to_, param::text("to", "target", "the copy's name; an existing tensor of that name is replaced"));
  }

  void apply(Packet& s, Context&) override {
    s.tensors[to_] = s.at(from_).clone();
  }

 private:
  std::string from_, to_;
};

}  // namespace

void register_tensor_nodes(Registry& registry) { add_nodes<GaussianNoise, RandomFlip, CopyTensor>(registry); }

}  // namespace umrflow::nodes
