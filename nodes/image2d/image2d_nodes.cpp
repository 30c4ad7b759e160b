// The `image2d.*` family's list: the SOD and SUN-RGBD sources
// (image2d/sod_source.cpp, sunrgbd_source.cpp), the 2D augmentations
// (image2d/transforms2d.cpp) and the 2D networks as module nodes:
// `image2d.resnet50` and `image2d.convnext`, encoders with torchvision's
// weight names (image2d/resnet.h, convnext.h), `image2d.saliency_decoder`
// (image2d/decoder2d.h) and `image2d.unimrseg`, the whole 2D UniMRSeg network
// with its adapter (image2d/unimrseg2d.h).
#include "builtin.h"
#include "image2d/convnext.h"
#include "image2d/decoder2d.h"
#include "image2d/image2d_nodes.h"
#include "image2d/resnet.h"
#include "image2d/unimrseg2d.h"
#include "unimrseg/unimrseg_parts.h"
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
    d.param(&SaliencyDecoderNode::out_channels_, param::integer("out_channels", 1, "channels of each output (1 for saliency)").min(1));
  }
  void setup() { decoder_ = image2d::SaliencyDecoder(channels_, width_, out_channels_); }

  torch::nn::Module& module() override { return *decoder_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    std::vector<torch::Tensor> f;
    for (int i = 0; i < 5; ++i) f.push_back(in.at(0).at("features." + std::to_string(i + 1)));
    const auto out = decoder_->forward(f);
    Packet p;
    p.tensors["logits"] = out[0];
    for (int i = 1; i < 5; ++i) p.tensors["side." + std::to_string(i + 1)] = out[static_cast<std::size_t>(i)];
    return p;
  }

 private:
  std::vector<std::int64_t> channels_;
  std::int64_t width_ = 0, out_channels_ = 1;
  image2d::SaliencyDecoder decoder_{nullptr};
};

class ConvNeXtNode final : public ModuleNode {
 public:
  static void declare(Declaration<ConvNeXtNode>& d) {
    d.type("image2d.convnext", NodeKind::module,
           "ConvNeXt encoder with torchvision's weight names (ConvNeXt-B by default; a torchvision convnext_base state dict imports "
           "with `umrflow weights import`); the four stage outputs.");
    d.input(PortSpec{"input", {{"image", 4, "(B, in_channels, H, W)"}}, "the image batch"});
    for (int i = 0; i < 4; ++i)
      d.output({"features." + std::to_string(i + 1), 4, "stage " + std::to_string(i + 1) + " at 1/" + std::to_string(4 << i) + " of the input"});
    d.param(&ConvNeXtNode::in_channels_,
            param::integer("in_channels", 4, "input channels: 4 for RGB with depth, 3 for ImageNet's stem").min(1));
    d.param(&ConvNeXtNode::depths_,
            param::integers("depths", std::vector<std::int64_t>{3, 3, 27, 3}, "blocks per stage (ConvNeXt-B: 3, 3, 27, 3)").length(4).min(1));
    d.param(&ConvNeXtNode::widths_,
            param::integers("widths", std::vector<std::int64_t>{128, 256, 512, 1024}, "channels per stage (ConvNeXt-B: 128 .. 1024)")
                .length(4)
                .min(1));
  }
  void setup() { net_ = image2d::ConvNeXt(in_channels_, depths_, widths_); }

  torch::nn::Module& module() override { return *net_; }
  Packet forward(const std::vector<Packet>& in, Context&) override {
    const image2d::ConvNeXtFeatures f = net_->features(in.at(0).at("image"));
    Packet out;
    for (int i = 0; i < 4; ++i) out.tensors["features." + std::to_string(i + 1)] = f[i];
    return out;
  }

 private:
  std::int64_t in_channels_ = 0;
  std::vector<std::int64_t> depths_, widths_;
  image2d::ConvNeXt net_{nullptr};
};

class UniMRSeg2dNode final : public ModuleNode {
  /// RGB and the depth or thermal image: the columns of `present`.
  static constexpr std::int64_t kModalities = 2;

 public:
  static void declare(Declaration<UniMRSeg2dNode>& d) {
    using O = image2d::UniMRSeg2dOptions;
    using N = UniMRSeg2dNode;
    d.type("image2d.unimrseg", NodeKind::module,
           "UniMRSeg for the 2D tasks: ResNet-50 or ConvNeXt (torchvision names under encoder.), the decoder with one output per "
           "level and the optional 2D reverse-attention adapter (Swin 7x7).");
    d.input(PortSpec{"complete", {{"image", 4, "(B, 4, H, W)"}}, "plain path", true});
    d.input(PortSpec{"incomplete", {{"image", 4, "(B, 4, H, W)"}}, "adapter path (needs adapter: true)", true});
    d.input(PortSpec{"groups", {{"group", 1, "int64 (S) from modality.subsets"}}, "with incomplete: run each group as its own batch", true});
    d.input(PortSpec{"auto", {{"image", 4, "(S*B, 4, H, W)"}, {"present", 2, "(S, 2): one column per modality (RGB, depth or thermal)"}},
                     "complete subsets by the plain path, the others by the adapter (plain path for all without one)", true});
    d.output({"logits", 4, "(B, out_channels, H, W)"});
    for (int i = 2; i <= 5; ++i)
      d.output({"side." + std::to_string(i), 4,
                "(B, out_channels, H, W) level " + std::to_string(i) + "'s output" + (i == 5 ? " (resnet50 only)" : "")});
    for (int i = 1; i <= 5; ++i)
      d.output({"features." + std::to_string(i), 4, "level " + std::to_string(i) + " (encoder or F_i)" + (i == 5 ? " (resnet50 only)" : "")});
    d.param(&N::backbone_, param::choice("backbone", "resnet50", {"resnet50", "convnext"},
                                         "encoder: resnet50 (five levels, 1/2 .. 1/32) or convnext (four levels, 1/4 .. 1/32)"));
    d.param(&N::options_, &O::convnext_depths,
            param::integers("convnext_depths", std::vector<std::int64_t>{3, 3, 27, 3}, "with convnext: blocks per stage (ConvNeXt-B's)")
                .length(4)
                .min(1));
    d.param(&N::options_, &O::convnext_widths,
            param::integers("convnext_widths", std::vector<std::int64_t>{128, 256, 512, 1024}, "with convnext: channels per stage (ConvNeXt-B's)")
                .length(4)
                .min(1));
    d.param(&N::options_, &O::in_channels, param::integer("in_channels", 4, "input channels: R, G, B and depth or thermal").min(1));
    d.param(&N::options_, &O::out_channels,
            param::integer("out_channels", 1, "output channels: 1 for saliency, 4 for the stage-1 reconstruction, the classes").min(1));
    d.param(&N::options_, &O::decoder_width, param::integer("decoder_width", 64, "channels of the decoder's top-down pathway").min(1));
    d.param(&N::head_, param::choice("head", "none", {"none", "relu"}, "activation of the outputs: relu for the stage-1 reconstruction"));
    d.param(&N::options_, &O::adapter, param::boolean("adapter", false, "add the stage-3 reverse-attention adapter (port `incomplete`)"));
    d.param(&N::options_, &O::attention_dims,
            param::integers("attention_dims", std::vector<std::int64_t>{},
                            "channels of each level's Swin layer, one per level; [] = resnet50 [64, 128, 128, 256, 256], convnext half of each width")
                .min(1));
    d.param(&N::options_, &O::heads,
            param::integers("heads", std::vector<std::int64_t>{},
                            "attention heads of each level's Swin layer; [] = about one per 32 channels, dividing them (resnet50 [2, 4, 4, 8, 8])")
                .min(1));
    d.param(&N::options_, &O::window, param::integer("window", 7, "side of the Swin layer's square window").min(1));
    d.param(&N::options_, &O::fuse_gamma,
            param::number("fuse_gamma", 1.0, "initial BatchNorm scale in each fuse_i; small (0.01) starts the adapter path near the plain path")
                .range(0, 10));
    d.param(&N::options_, &O::freeze_encoder,
            param::boolean("freeze_encoder", false, "the encoder takes no gradient and runs without autograd (stage 3)"));
    d.param(&N::options_, &O::encoder_bn_update,
            param::boolean("encoder_bn_update", true, "with freeze_encoder: the complete path still updates the encoder's BatchNorm statistics"));
    d.param(&N::options_, &O::freeze_decoder,
            param::boolean("freeze_decoder", false, "the decoder takes no gradient and keeps its loaded BatchNorm statistics (stage 3 on short budgets)"));
  }
  void setup() {
    options_.relu_head = head_ == "relu";
    options_.backbone = backbone_ == "convnext" ? image2d::Backbone2d::convnext : image2d::Backbone2d::resnet50;
    net_ = image2d::UniMRSeg2d(options_);
  }

  torch::nn::Module& module() override { return *net_; }

  Packet forward(const std::vector<Packet>& in, Context&) override {
    const Packet &complete = in.at(0), &incomplete = in.at(1), &groups = in.at(2), &automatic = in.at(3);
    const int bound = !complete.tensors.empty() + !incomplete.tensors.empty() + !automatic.tensors.empty();
    if (bound != 1) throw std::runtime_error("bind exactly one of the ports complete, incomplete and auto (" + std::to_string(bound) + " bound)");
    if (!groups.tensors.empty() && incomplete.tensors.empty()) throw std::runtime_error("port groups goes with port incomplete only");
    if (!complete.tensors.empty()) return result(net_->complete(complete.at("image")));
    if (!incomplete.tensors.empty()) {
      const torch::Tensor& x = incomplete.at("image");
      if (groups.tensors.empty()) return result(net_->incomplete(x));
      std::vector<image2d::Outputs2d> parts;
      for (const auto& [first, count] : model::group_rows(groups.at("group"), x.size(0))) parts.push_back(net_->incomplete(x.narrow(0, first, count)));
      return result(concatenated(parts));
    }
    // Port auto: complete subsets through the plain path, the others through the adapter.
    auto outputs = [](const image2d::Outputs2d& o) {
      std::vector<torch::Tensor> v(o.logits.begin(), o.logits.end());
      v.insert(v.end(), o.features.begin(), o.features.end());
      return v;
    };
    model::RowsFn incomplete_fn;
    if (net_->options.adapter) incomplete_fn = [&](const torch::Tensor& rows) { return outputs(net_->incomplete(rows)); };
    const std::vector<torch::Tensor> v = model::route_by_subset(
        automatic.at("image"), automatic.at("present"), kModalities, [&](const torch::Tensor& rows) { return outputs(net_->complete(rows)); },
        incomplete_fn);
    const auto levels = static_cast<std::ptrdiff_t>(net_->levels());
    return result(image2d::Outputs2d{{v.begin(), v.begin() + levels}, {v.begin() + levels, v.end()}});
  }

 private:
  static image2d::Outputs2d concatenated(const std::vector<image2d::Outputs2d>& parts) {
    image2d::Outputs2d out;
    for (std::size_t i = 0; i < parts.at(0).logits.size(); ++i) {
      std::vector<torch::Tensor> l, f;
      for (const auto& p : parts) {
        l.push_back(p.logits[i]);
        f.push_back(p.features[i]);
      }
      out.logits.push_back(torch::cat(l));
      out.features.push_back(torch::cat(f));
    }
    return out;
  }
  static Packet result(const image2d::Outputs2d& o) {
    Packet p;
    p.tensors["logits"] = o.logits.at(0);
    for (std::size_t i = 1; i < o.logits.size(); ++i) p.tensors["side." + std::to_string(i + 1)] = o.logits[i];
    for (std::size_t i = 0; i < o.features.size(); ++i) p.tensors["features." + std::to_string(i + 1)] = o.features[i];
    return p;
  }

  image2d::UniMRSeg2dOptions options_;
  std::string head_, backbone_;
  image2d::UniMRSeg2d net_{nullptr};
};

}  // namespace

void register_image2d_nodes(Registry& registry) {
  add_nodes<image2d::SodSamples, image2d::SunRgbdSamples, image2d::Resize2d, image2d::RandomRotate2d, image2d::BorderCrop2d, image2d::ColorJitter2d,
            image2d::Normalize2d, ResNet50Node, ConvNeXtNode, SaliencyDecoderNode, UniMRSeg2dNode>(registry);
}

}  // namespace umrflow::nodes
