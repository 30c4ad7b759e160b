// The `image2d.*` family's list: the SOD source (image2d/sod_source.cpp), the
// 2D augmentations (image2d/transforms2d.cpp) and
// the 2D networks as module nodes: `image2d.resnet50`, an encoder with
// torchvision's weight names (image2d/resnet.h).
#include "builtin.h"
#include "image2d/decoder2d.h"
#include "image2d/image2d_nodes.h"
#include "image2d/resnet.h"
#include "umrflow/declare.h"
#include "umrflow/module.h"

namespace umrflow::nodes {

namespace {

class ResNet50Node final : public ModuleNode {
 public:
  static void declare(Declaration<ResNet50Node>& d) {
    d.type("image2d.resnet50", NodeKind::module,
           "ResNet-50 encoder with torchvision's weight names (a torchvision state dict imports with `umrflow weights "
           "import`); five feature levels from the stem to layer4.");
    d.input(PortSpec{"input", {{"image", 4, "(B, in_channels, H, W)"}}, "the image batch"});
    const char* about[] = {"stem after ReLU (B, 64, H/2, W/2)", "layer1 (B, 256, H/4, W/4)", "layer2 (B, 512, H/8, W/8)",
                           "layer3 (B, 1024, H/16, W/16)", "layer4 (B, 2048, H/32, W/32)"};
    for (int i = 0; i < 5; ++i) d.output({"features." + std::to_string(i + 1), 4, about[i]});
    d.param(&ResNet50Node::in_channels_,
            param::integer("in_channels", 4, "input channels: 4 for RGB with depth or thermal, 3 for ImageNet's stem").min(1));
  }
  void setup() { net_ = image2d::ResNet50(in_channels_); }

  torch::nn::Module& module() override { return *net_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    const image2d::Features2d f = net_->features(in.at(0).at("image"));
    Packet out;
    for (int i = 0; i < 5; ++i) out.tensors["features." + std::to_string(i + 1)] = f[i];
    return out;
  }

 private:
  std::int64_t in_channels_ = 0;
  image2d::ResNet50 net_{nullptr};
};

class SaliencyDecoderNode final : public ModuleNode {
 public:
  static void declare(Declaration<SaliencyDecoderNode>& d) {
    d.type("image2d.saliency_decoder", NodeKind::module,
           "Top-down decoder over five feature levels with a 1-channel head per level: `logits` from the finest level, "
           "`side.2`..`side.5` from the others, all at twice the finest level's size (the input's, after image2d.resnet50).");
    std::vector<KeySpec> keys;
    for (int i = 1; i <= 5; ++i) keys.push_back({"features." + std::to_string(i), 4, "level " + std::to_string(i) + " (B, C, H, W)"});
    d.input(PortSpec{"features", keys, "an encoder's five levels, finest first"});
    d.output({"logits", 4, "(B, 1, H, W) saliency logits"});
    for (int i = 2; i <= 5; ++i) d.output({"side." + std::to_string(i), 4, "(B, 1, H, W) level " + std::to_string(i) + "'s logits"});
    d.param(&SaliencyDecoderNode::channels_,
            param::integers("channels", std::vector<std::int64_t>{64, 256, 512, 1024, 2048}, "the levels' channels (ResNet-50's)")
                .length(5)
                .min(1));
    d.param(&SaliencyDecoderNode::width_, param::integer("width", 64, "channels of the top-down pathway").min(1));
  }
  void setup() { decoder_ = image2d::SaliencyDecoder(channels_, width_); }

  torch::nn::Module& module() override { return *decoder_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    std::array<torch::Tensor, 5> f;
    for (int i = 0; i < 5; ++i) f[static_cast<std::size_t>(i)] = in.at(0).at("features." + std::to_string(i + 1));
    const auto out = decoder_->forward(f);
    Packet p;
    p.tensors["logits"] = out[0];
    for (int i = 1; i < 5; ++i) p.tensors["side." + std::to_string(i + 1)] = out[static_cast<std::size_t>(i)];
    return p;
  }

 private:
  std::vector<std::int64_t> channels_;
  std::int64_t width_ = 0;
  image2d::SaliencyDecoder decoder_{nullptr};
};

}  // namespace

void register_image2d_nodes(Registry& registry) {
  add_nodes<image2d::SodSamples, image2d::Resize2d, image2d::RandomRotate2d, image2d::BorderCrop2d, image2d::ColorJitter2d,
            image2d::Normalize2d, ResNet50Node, SaliencyDecoderNode>(registry);
}

}  // namespace umrflow::nodes
