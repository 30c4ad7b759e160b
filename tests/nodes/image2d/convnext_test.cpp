#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include "image2d/convnext.h"
#include "image2d/unimrseg2d.h"
#include "io/state_dict.h"
#include "nodes/node_harness.h"
#include "umrflow/module.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow::image2d {

namespace {

// torchvision's ConvNeXt (python3-torchvision): a small one built by its own
// class (depths 1, 2, 1, 1; widths 16 .. 128) with every weight drawn at
// random (layer scales included, so no block is near an identity), its state
// dict, its four stage outputs of one input, and the names and shapes of
// convnext_base's state dict.
const char* const kMakeConvNeXt = R"PY(
import sys, torch, torchvision
from torchvision.models.convnext import ConvNeXt, CNBlockConfig
out = sys.argv[1]
torch.manual_seed(5)
m = ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 1), CNBlockConfig(128, None, 1)])
with torch.no_grad():
    for name, p in m.named_parameters():
        if name.endswith('layer_scale'): p.uniform_(0.2, 0.6)
        elif p.dim() == 1: p.uniform_(-0.2, 0.2) if name.endswith('bias') else p.uniform_(0.5, 1.5)
m.eval()
torch.save(m.state_dict(), out + "/convnext.pth")
x = torch.randn(2, 3, 64, 96)
with torch.no_grad():
    h, f = x, []
    for i, layer in enumerate(m.features):
        h = layer(h)
        if i % 2 == 1: f.append(h)
    logits = m(x)
torch.save({"x": x, "f1": f[0], "f2": f[1], "f3": f[2], "f4": f[3], "logits": logits}, out + "/features.pth")
with open(out + "/base.txt", "w") as t:
    for k, v in torchvision.models.convnext_base().state_dict().items():
        t.write(k + " " + "x".join(str(s) for s in v.shape) + "\n")
)PY";

}  // namespace

// A torchvision ConvNeXt state dict imported with `umrflow weights import` fills every tensor of umrflow's ConvNeXt
// by name, and the network then computes torchvision's four stage outputs and logits; ConvNeXt-B has exactly
// torchvision's convnext_base names and shapes.
TEST(ConvNeXt, TorchvisionWeightsImportAndGiveTheSameFeatures) {
  test::TempDir dir;
  const std::string d = dir.path();
  if (test::run_command("/usr/bin/python3 -c 'import torchvision' 2>/dev/null", nullptr) != 0)
    GTEST_SKIP() << "python3-torchvision is not installed (tools/setup.sh installs it)";
  std::string log;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + dir.write("make.py", kMakeConvNeXt) + " " + d + " 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(std::string(UMRFLOW_BINARY) + " weights import " + d + "/convnext.pth " + d + "/net.pt --module net 2>&1", &log), 0)
      << log;
  torch::serialize::InputArchive archive;
  archive.load_from(d + "/net.pt");
  ConvNeXt net(3, std::vector<std::int64_t>{1, 2, 1, 1}, std::vector<std::int64_t>{16, 32, 64, 128}, 1000);
  std::size_t filled = 0;
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters()) {
      torch::Tensor t;
      ASSERT_TRUE(archive.try_read("net." + p.key(), t)) << p.key() << " is not a torchvision name";
      ASSERT_EQ(t.sizes(), p.value().sizes()) << p.key();
      p.value().copy_(t);
      ++filled;
    }
  }
  EXPECT_EQ(filled, io::read_state_dict(d + "/convnext.pth").size());
  net->eval();
  std::map<std::string, torch::Tensor> want;
  for (const auto& [k, v] : io::read_state_dict(d + "/features.pth")) want[k] = v;
  torch::NoGradGuard no_grad;
  const ConvNeXtFeatures f = net->features(want.at("x"));
  for (int i = 0; i < 4; ++i) {
    const torch::Tensor& w = want.at("f" + std::to_string(i + 1));
    ASSERT_EQ(f[i].sizes(), w.sizes()) << "stage " << i + 1;
    EXPECT_LE((f[i] - w).abs().max().item<double>(), 1e-4 * w.abs().max().item<double>()) << "stage " << i + 1;
  }
  const torch::Tensor logits = net->forward(want.at("x")), wl = want.at("logits");
  EXPECT_LE((logits - wl).abs().max().item<double>(), 1e-4 * wl.abs().max().item<double>());
  // As image2d.unimrseg's backbone the same names sit under encoder.: every
  // encoder tensor has its torchvision counterpart (the classifier aside).
  UniMRSeg2dOptions o;
  o.backbone = Backbone2d::convnext;
  o.in_channels = 3;
  o.convnext_depths = {1, 2, 1, 1};
  o.convnext_widths = {16, 32, 64, 128};
  std::size_t encoder_tensors = 0;
  for (const auto& p : UniMRSeg2d(o)->named_parameters()) {
    if (p.key().rfind("encoder.", 0) != 0) continue;
    torch::Tensor t;
    ASSERT_TRUE(archive.try_read("net." + p.key().substr(8), t)) << p.key();
    EXPECT_EQ(t.sizes(), p.value().sizes()) << p.key();
    ++encoder_tensors;
  }
  EXPECT_EQ(encoder_tensors + 4, filled);  // classifier.0.{weight,bias}, classifier.2.{weight,bias}

  std::map<std::string, std::string> base;
  std::ifstream names(d + "/base.txt");
  for (std::string name, shape; names >> name >> shape;) base[name] = shape;
  std::map<std::string, std::string> ours;
  for (const auto& p : ConvNeXt(3, std::vector<std::int64_t>{3, 3, 27, 3}, std::vector<std::int64_t>{128, 256, 512, 1024}, 1000)->named_parameters()) {
    std::string shape;
    for (const auto s : p.value().sizes()) shape += (shape.empty() ? "" : "x") + std::to_string(s);
    ours[p.key()] = shape;
  }
  EXPECT_EQ(ours, base);
}

// The stem takes any number of channels and the stages come at 1/4 .. 1/32; another channel count is an error naming
// the expected shape, and forward without a classifier is refused.
TEST(ConvNeXt, FourChannelStemAndShapeErrors) {
  ConvNeXt net(4, std::vector<std::int64_t>{1, 1, 1, 1}, std::vector<std::int64_t>{8, 16, 32, 64});
  net->eval();
  torch::NoGradGuard no_grad;
  const ConvNeXtFeatures f = net->features(torch::randn({1, 4, 64, 96}));
  const std::int64_t widths[] = {8, 16, 32, 64}, strides[] = {4, 8, 16, 32};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f[i].sizes(), (std::vector<std::int64_t>{1, widths[i], 64 / strides[i], 96 / strides[i]})) << i;
  try {
    net->features(torch::randn({1, 3, 64, 64}));
    FAIL() << "a 3-channel image was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("(B, 4, H, W), got [1, 3, 64, 64]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(net->forward(torch::randn({1, 4, 64, 64})), std::logic_error);
}

// The `image2d.convnext` node builds the network its parameters describe, names its weights as torchvision does and
// gives the four stage outputs at 1/4 .. 1/32.
TEST(ConvNeXt, TheNodeGivesTheFourStages) {
  auto node = test::make_node("image2d.convnext", "{depths: [1, 1, 2, 1], widths: [8, 16, 24, 32]}");
  auto& module_node = dynamic_cast<ModuleNode&>(*node);
  const auto names = module_node.module().named_parameters().keys();
  for (const char* key : {"features.0.0.weight", "features.0.1.bias", "features.5.1.layer_scale", "features.5.1.block.3.weight", "features.6.1.weight"})
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
  Packet in;
  in.tensors["image"] = torch::randn({2, 4, 64, 32});
  Context ctx(1, 0, 0, "enc", false);
  const Packet out = module_node.forward({in}, ctx);
  const std::int64_t widths[] = {8, 16, 24, 32};
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(out.at("features." + std::to_string(i + 1)).sizes(), (std::vector<std::int64_t>{2, widths[i], 16 >> i, 8 >> i})) << i;
}

}  // namespace umrflow::image2d
