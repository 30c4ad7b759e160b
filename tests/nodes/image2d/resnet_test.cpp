#include <gtest/gtest.h>

#include <torch/torch.h>

#include <map>

#include "image2d/resnet.h"
#include "io/state_dict.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow::image2d {

namespace {

// torchvision's own ResNet-50 (random weights, BatchNorm statistics and
// affine terms drawn too, so that none is an identity), its state dict and
// its five feature levels of one input, written by Debian's
// python3-torchvision.
const char* const kMakeResNet = R"PY(
import sys, torch, torchvision
out = sys.argv[1]
torch.manual_seed(3)
m = torchvision.models.resnet50()
with torch.no_grad():
    for b in m.modules():
        if isinstance(b, torch.nn.BatchNorm2d):
            b.running_mean.uniform_(-0.1, 0.1); b.running_var.uniform_(0.5, 1.5)
            b.weight.uniform_(0.5, 1.5); b.bias.uniform_(-0.1, 0.1)
            b.num_batches_tracked.fill_(7)
m.eval()
torch.save(m.state_dict(), out + "/resnet50.pth")
x = torch.randn(2, 3, 64, 96)
with torch.no_grad():
    f1 = m.relu(m.bn1(m.conv1(x)))
    f2 = m.layer1(m.maxpool(f1)); f3 = m.layer2(f2); f4 = m.layer3(f3); f5 = m.layer4(f4)
torch.save({"x": x, "f1": f1, "f2": f2, "f3": f3, "f4": f4, "f5": f5}, out + "/features.pth")
)PY";

std::map<std::string, torch::Tensor> as_map(const io::NamedTensors& list) { return {list.begin(), list.end()}; }

}  // namespace

// A torchvision ResNet-50 state dict imported with `umrflow weights import`
// keeps every tensor bit for bit, fills every tensor of umrflow's ResNet-50
// by name (all but torchvision's classifier), and the network then computes
// torchvision's five feature levels of the same input.
TEST(ResNet50, TorchvisionWeightsImportAndGiveTheSameFeatures) {
  test::TempDir dir;
  const std::string d = dir.path();
  if (test::run_command("/usr/bin/python3 -c 'import torchvision' 2>/dev/null", nullptr) != 0)
    GTEST_SKIP() << "python3-torchvision is not installed (tools/setup.sh installs it)";
  std::string log;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + dir.write("make.py", kMakeResNet) + " " + d + " 2>&1", &log), 0) << log;
  ASSERT_EQ(test::run_command(std::string(UMRFLOW_BINARY) + " weights import " + d + "/resnet50.pth " + d + "/enc.pt --module enc 2>&1", &log), 0)
      << log;

  const io::NamedTensors state = io::read_state_dict(d + "/resnet50.pth");
  torch::serialize::InputArchive archive;
  archive.load_from(d + "/enc.pt");
  for (const auto& [key, t] : state) {
    torch::Tensor got;
    ASSERT_TRUE(archive.try_read("enc." + key, got)) << key;
    EXPECT_TRUE(torch::equal(got, t)) << key;
  }

  ResNet50 net(3);
  std::size_t filled = 0;
  {
    torch::NoGradGuard no_grad;
    const auto fill = [&](const std::string& name, torch::Tensor& target) {
      torch::Tensor t;
      ASSERT_TRUE(archive.try_read("enc." + name, t)) << name << " is not a torchvision name";
      ASSERT_EQ(t.sizes(), target.sizes()) << name;
      target.copy_(t);
      ++filled;
    };
    for (auto& p : net->named_parameters()) fill(p.key(), p.value());
    for (auto& b : net->named_buffers()) fill(b.key(), b.value());
  }
  EXPECT_EQ(filled + 2, state.size());  // all but fc.weight and fc.bias
  net->eval();
  const auto want = as_map(io::read_state_dict(d + "/features.pth"));
  torch::NoGradGuard no_grad;
  const Features2d f = net->features(want.at("x"));
  for (int i = 0; i < 5; ++i) {
    const torch::Tensor& w = want.at("f" + std::to_string(i + 1));
    ASSERT_EQ(f[i].sizes(), w.sizes()) << "level " << i + 1;
    const double scale = w.abs().max().item<double>();
    EXPECT_LE((f[i] - w).abs().max().item<double>(), 1e-4 * scale) << "level " << i + 1;
  }
}

// The stem takes any number of channels; an input with another number is an
// error that names the expected shape.
TEST(ResNet50, FourChannelStemAndShapeErrors) {
  ResNet50 net(4);
  EXPECT_EQ(net->conv1->weight.sizes(), (std::vector<std::int64_t>{64, 4, 7, 7}));
  net->eval();
  torch::NoGradGuard no_grad;
  const Features2d f = net->features(torch::randn({1, 4, 64, 64}));
  const std::int64_t channels[] = {64, 256, 512, 1024, 2048}, sides[] = {32, 16, 8, 4, 2};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f[i].sizes(), (std::vector<std::int64_t>{1, channels[i], sides[i], sides[i]})) << i;
  try {
    net->features(torch::randn({1, 3, 64, 64}));
    FAIL() << "a 3-channel image was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected an image batch (B, 4, H, W), got [1, 3, 64, 64]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(net->forward(torch::randn({1, 4, 64, 64})), std::logic_error);
}

}  // namespace umrflow::image2d
