// Small nodes on synthetic tensors: enough to run, test and time the engine
// without any data set. The learning problem is linear: `target` is a fixed
// mix of the `image` channels, so `model.channel_mix` can fit it exactly.
#include <torch/torch.h>

#include "builtin.h"
#include "umrflow/module.h"

namespace umrflow::nodes {

namespace {

/// Source: `count` samples of Gaussian noise of `shape` (C, spatial...), with a
/// target that mixes the channels by weights (c + 1) / C.
class SyntheticTensors final : public SourceNode {
 public:
  explicit SyntheticTensors(const Params& p) : count_(p.get_int("count")), shape_(p.get_ints("shape")) {}
  std::int64_t size() const override { return count_; }
  Packet load(std::int64_t index, Context& ctx) override {
    torch::Tensor image = torch::randn(shape_, ctx.generator());
    const auto c = shape_[0];
    torch::Tensor w = torch::arange(1, c + 1, torch::kFloat32) / static_cast<double>(c);
    std::vector<std::int64_t> wshape(shape_.size(), 1);
    wshape[0] = c;
    Packet p;
    p.tensors["image"] = image;
    p.tensors["target"] = (image * w.view(wshape)).sum(0, /*keepdim=*/true);
    p.samples.push_back({index, "synthetic_" + std::to_string(index), {}});
    return p;
  }

 private:
  std::int64_t count_;
  std::vector<std::int64_t> shape_;
};

class GaussianNoise final : public SampleNode {
 public:
  explicit GaussianNoise(const Params& p) : std_(p.get_number("std")) {}
  void apply(Packet& s, Context& ctx) override {
    auto& x = s.at("image");
    x = x + std_ * torch::randn(x.sizes(), ctx.generator());
  }

 private:
  double std_;
};

/// Flips every tensor of the sample along each listed axis with probability p
/// (one draw per axis, shared by all tensors so image and target stay aligned).
class RandomFlip final : public SampleNode {
 public:
  explicit RandomFlip(const Params& p) : axes_(p.get_ints("axes")), p_(p.get_number("p")) {}
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
  double p_;
};

/// A learned linear map over the channel axis (axis 1 of a batch): a 1x1x1
/// convolution for any number of spatial axes.
struct ChannelMixImpl : torch::nn::Module {
  ChannelMixImpl(std::int64_t in, std::int64_t out, bool bias) {
    weight = register_parameter("weight", torch::randn({out, in}) / std::sqrt(static_cast<double>(in)));
    if (bias) this->bias = register_parameter("bias", torch::zeros({out}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::matmul(x.movedim(1, -1), weight.t());
    if (bias.defined()) y = y + bias;
    return y.movedim(-1, 1);
  }
  torch::Tensor weight, bias;
};
TORCH_MODULE(ChannelMix);

class ChannelMixNode final : public ModuleNode {
 public:
  explicit ChannelMixNode(const Params& p)
      : net_(p.get_int("in_channels"), p.get_int("out_channels"), p.get_bool("bias")), in_(p.get_int("in_channels")) {}
  torch::nn::Module& module() override { return *net_; }
  Packet forward(const std::vector<Packet>& inputs, Context&) override {
    const torch::Tensor& x = inputs.at(0).at("image");
    if (x.dim() < 2 || x.size(1) != in_)
      throw std::runtime_error("expects 'image' with " + std::to_string(in_) + " channels on axis 1, got shape " +
                               c10::str(x.sizes()));
    Packet out;
    out.tensors["pred"] = net_->forward(x);
    return out;
  }

 private:
  ChannelMix net_;
  std::int64_t in_;
};

}  // namespace

void register_demo_nodes(Registry& registry) {
  NodeSpec src;
  src.type = "synthetic.tensors";
  src.kind = NodeKind::source;
  src.summary = "Gaussian-noise images with a target that is a fixed mix of their channels (for demos and tests).";
  src.params = {
      param::integer("count", 64, "samples per epoch").min(1),
      param::integers("shape", std::vector<std::int64_t>{2, 8, 8, 8}, "image shape: channels, then spatial axes").min(1),
  };
  src.outputs_for = [](const Params& p) {
    const int rank = p.has("shape") ? static_cast<int>(p.get_ints("shape").size()) : -1;
    return std::vector<KeySpec>{{"image", rank, "float32 noise, N(0, 1)"}, {"target", rank, "one channel: sum_c (c+1)/C * image_c"}};
  };
  src.create = [](const Params& p) { return std::make_unique<SyntheticTensors>(p); };
  registry.add(std::move(src));

  NodeSpec noise;
  noise.type = "tensor.gaussian_noise";
  noise.kind = NodeKind::sample;
  noise.summary = "Adds N(0, std^2) noise to `image`.";
  noise.params = {param::number("std", 0.1, "standard deviation of the noise").min(0.0)};
  noise.inputs = {PortSpec{"in", {{"image", -1, "tensor to perturb"}}, "the sample"}};
  noise.create = [](const Params& p) { return std::make_unique<GaussianNoise>(p); };
  registry.add(std::move(noise));

  NodeSpec flip;
  flip.type = "tensor.random_flip";
  flip.kind = NodeKind::sample;
  flip.summary = "Flips every tensor of a sample along each listed axis with probability p (one draw per axis).";
  flip.params = {
      param::integers("axes", std::vector<std::int64_t>{1, 2, 3}, "axes of the per-sample tensors (0 is channels)").min(0),
      param::number("p", 0.5, "probability of flipping each axis").range(0.0, 1.0),
  };
  flip.inputs = {PortSpec{"in", {}, "the sample"}};
  flip.create = [](const Params& p) { return std::make_unique<RandomFlip>(p); };
  registry.add(std::move(flip));

  NodeSpec mix;
  mix.type = "model.channel_mix";
  mix.kind = NodeKind::module;
  mix.summary = "A learned linear map over the channel axis (a 1x1x1 convolution).";
  mix.params = {
      param::integer("in_channels", std::nullopt, "channels of `image`").min(1),
      param::integer("out_channels", 1, "channels of `pred`").min(1),
      param::boolean("bias", true, "add a learned bias per output channel"),
  };
  mix.inputs = {PortSpec{"x", {{"image", -1, "batch, channels first"}}, "input"}};
  mix.outputs = {{"pred", -1, "same rank as `image`, out_channels channels"}};
  mix.create = [](const Params& p) { return std::make_unique<ChannelMixNode>(p); };
  registry.add(std::move(mix));
}

}  // namespace umrflow::nodes
