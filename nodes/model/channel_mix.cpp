// `model.channel_mix`: the smallest module, a learned linear map over the
// channel axis, for demos, tests and engine benchmarks.
#include <torch/torch.h>

#include "builtin.h"
#include "umrflow/declare.h"
#include "umrflow/module.h"

namespace umrflow::nodes {

namespace {

/// A linear map over axis 1 of a batch: a 1x1x1 convolution for any number of
/// spatial axes.
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
  static void declare(Declaration<ChannelMixNode>& d) {
    d.type("model.channel_mix", NodeKind::module, "A learned linear map over the channel axis (a 1x1x1 convolution).");
    d.input({"x", {{"image", -1, "batch, channels first"}}, "input"});
    d.output({"pred", -1, "same rank as `image`, out_channels channels"});
    d.param(&ChannelMixNode::in_, param::integer("in_channels", std::nullopt, "channels of `image`").min(1));
    d.param(&ChannelMixNode::out_, param::integer("out_channels", 1, "channels of `pred`").min(1));
    d.param(&ChannelMixNode::bias_, param::boolean("bias", true, "add a learned bias per output channel"));
  }
  void setup() { net_ = ChannelMix(in_, out_, bias_); }

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
  std::int64_t in_ = 0, out_ = 0;
  bool bias_ = true;
  ChannelMix net_{nullptr};
};

}  // namespace

void register_channel_mix_nodes(Registry& registry) { add_nodes<ChannelMixNode>(registry); }

}  // namespace umrflow::nodes
