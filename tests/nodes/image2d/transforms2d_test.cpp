#include <gtest/gtest.h>

#include <torch/torch.h>

#include <set>

#include "io/state_dict.h"
#include "nodes/node_harness.h"
#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"
#include "umrflow/run.h"

namespace umrflow::image2d {

namespace {

using test::make_node;

Packet sample(const torch::Tensor& image, const torch::Tensor& label) {
  Packet p;
  p.tensors["image"] = image;
  if (label.defined()) p.tensors["label"] = label;
  return p;
}

void apply(Node& node, Packet& p, std::int64_t index = 0) {
  Context ctx(7, 0, index, "t", true);
  static_cast<SampleNode&>(node).apply(p, ctx);
}

double largest_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>(); }

}  // namespace

// Halving with bilinear sampling (align_corners false) averages each 2 x 2
// block; doubling a label by nearest neighbour repeats each pixel twice per axis; label_mode keep leaves it alone.
TEST(Transforms2d, ResizeBilinearHalvesToBlockMeansAndNearestRepeats) {
  const torch::Tensor image = torch::rand({4, 6, 8});
  auto half = make_node("image2d.resize", "{size: [3, 4]}");
  Packet p = sample(image, torch::rand({1, 6, 8}));
  apply(*half, p);
  const torch::Tensor blocks = torch::avg_pool2d(image.unsqueeze(0), 2).squeeze(0);
  EXPECT_LE(largest_difference(p.at("image"), blocks), 1e-6);
  EXPECT_EQ(p.at("label").sizes(), (std::vector<std::int64_t>{1, 3, 4}));

  auto twice = make_node("image2d.resize", "{size: [12, 16], label_mode: nearest}");
  const torch::Tensor label = torch::randint(0, 38, {1, 6, 8}, torch::kUInt8);
  Packet q = sample(image, label);
  apply(*twice, q);
  EXPECT_EQ(q.at("label").scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(q.at("label"), label.repeat_interleave(2, 1).repeat_interleave(2, 2)));

  // label_mode: keep leaves the label at its own size for scoring there.
  auto keep = make_node("image2d.resize", "{size: [12, 16], label_mode: keep}");
  Packet k = sample(image, label);
  apply(*keep, k);
  EXPECT_EQ(k.at("image").sizes(), (std::vector<std::int64_t>{4, 12, 16}));
  EXPECT_TRUE(torch::equal(k.at("label"), label));
}

// A rotation by 90 degrees of a square image is numpy's rot90 (counter-
// clockwise), for the image (bilinear) and a class map (nearest); 0 degrees
// gives the input back; p 0 never rotates.
TEST(Transforms2d, RotationByNinetyDegreesIsRot90) {
  const torch::Tensor image = torch::rand({4, 6, 6});
  const torch::Tensor label = torch::randint(0, 38, {1, 6, 6}, torch::kUInt8);
  auto quarter = make_node("image2d.random_rotate", "{degrees: [90, 90], p: 1, label_mode: nearest}");
  Packet p = sample(image, label);
  apply(*quarter, p);
  EXPECT_LE(largest_difference(p.at("image"), torch::rot90(image, 1, {1, 2})), 1e-5);
  EXPECT_TRUE(torch::equal(p.at("label"), torch::rot90(label, 1, {1, 2})));

  auto none = make_node("image2d.random_rotate", "{degrees: [0, 0], p: 1}");
  Packet q = sample(image, torch::Tensor());
  apply(*none, q);
  EXPECT_LE(largest_difference(q.at("image"), image), 1e-6);

  auto never = make_node("image2d.random_rotate", "{p: 0}");
  Packet r = sample(image, label);
  apply(*never, r);
  EXPECT_TRUE(r.at("image").is_same(image));
}

// The border crop is a centred window of each size in [n - border, n - 1]
// per axis (every size is drawn over many samples), the same for the label.
TEST(Transforms2d, BorderCropIsACentredWindowOfRandomSize) {
  const torch::Tensor image = torch::rand({4, 20, 30}), label = torch::rand({1, 20, 30});
  auto crop = make_node("image2d.border_crop", "{border: 4}");
  std::set<std::int64_t> heights, widths;
  for (std::int64_t i = 0; i < 200; ++i) {
    Packet p = sample(image, label);
    apply(*crop, p, i);
    const std::int64_t h = p.at("image").size(1), w = p.at("image").size(2);
    ASSERT_GE(h, 16);
    ASSERT_LE(h, 19);
    ASSERT_GE(w, 26);
    ASSERT_LE(w, 29);
    heights.insert(h);
    widths.insert(w);
    EXPECT_TRUE(torch::equal(p.at("image"), image.narrow(1, (20 - h) / 2, h).narrow(2, (30 - w) / 2, w)));
    EXPECT_TRUE(torch::equal(p.at("label"), label.narrow(1, (20 - h) / 2, h).narrow(2, (30 - w) / 2, w)));
  }
  EXPECT_EQ(heights.size(), 4u);
  EXPECT_EQ(widths.size(), 4u);
}

// Brightness, contrast and saturation with fixed factors give what
// torchvision's adjust_brightness, adjust_contrast and adjust_saturation give
// in that order (Debian's python3-torchvision); the fourth channel and the
// label stay as they were.
TEST(Transforms2d, ColorJitterEqualsTorchvisionsAdjustments) {
  if (test::run_command("/usr/bin/python3 -c 'import torchvision' 2>/dev/null", nullptr) != 0)
    GTEST_SKIP() << "python3-torchvision is not installed (tools/setup.sh installs it)";
  test::TempDir dir;
  const torch::Tensor image = torch::rand({4, 9, 11}), label = torch::rand({1, 9, 11});
  io::write_state_dict(dir.path() + "/in.pth", {{"image", image}});
  const std::string script = dir.write("jitter.py", R"PY(
import sys, torch
import torchvision.transforms.functional as F
x = torch.load(sys.argv[1] + "/in.pth")["image"][:3]
x = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(x, 1.3), 0.6), 1.7)
torch.save({"rgb": x}, sys.argv[1] + "/out.pth")
)PY");
  std::string log;
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + script + " " + dir.path() + " 2>&1", &log), 0) << log;
  const torch::Tensor want = io::read_state_dict(dir.path() + "/out.pth").at(0).second;
  auto jitter = make_node("image2d.color_jitter", "{brightness: [1.3, 1.3], contrast: [0.6, 0.6], saturation: [1.7, 1.7]}");
  Packet p = sample(image, label);
  apply(*jitter, p);
  EXPECT_LE(largest_difference(p.at("image").narrow(0, 0, 3), want), 1e-6);
  EXPECT_TRUE(torch::equal(p.at("image")[3], image[3]));
  EXPECT_TRUE(p.at("label").is_same(label));
}

// ImageNet normalisation of R, G, B; the fourth channel (depth or thermal)
// keeps its values; means and deviations of different counts are an error.
TEST(Transforms2d, NormalizeGivesTheClosedFormOnTheListedChannels) {
  const torch::Tensor image = torch::rand({4, 5, 7});
  auto norm = make_node("image2d.normalize", "{}");
  Packet p = sample(image, torch::Tensor());
  apply(*norm, p);
  const double mean[] = {0.485, 0.456, 0.406}, sd[] = {0.229, 0.224, 0.225};
  for (int c = 0; c < 3; ++c) EXPECT_LE(largest_difference(p.at("image")[c], (image[c] - mean[c]) / sd[c]), 1e-6) << c;
  EXPECT_TRUE(torch::equal(p.at("image")[3], image[3]));

  auto bad = make_node("image2d.normalize", "{mean: [0.5, 0.5], std: [0.5]}");
  Packet q = sample(image, torch::Tensor());
  EXPECT_THROW(apply(*bad, q), std::runtime_error);
  auto misfit = make_node("image2d.resize", "{}");
  Packet r = sample(image, torch::rand({1, 4, 7}));
  try {
    apply(*misfit, r);
    FAIL() << "a label of another size was resized";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match `image`"), std::string::npos) << e.what();
  }
}

}  // namespace umrflow::image2d
