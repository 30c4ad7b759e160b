#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>

#include "image2d/image_io.h"
#include "test_util.h"
#include "umrflow/doc.h"
#include "umrflow/node.h"
#include "umrflow/run.h"

namespace umrflow::image2d {

namespace {

/// A w x h image whose sample (x, y, c) is (seed + 7x + 13y + 29c) mod 256.
Image pattern(int w, int h, int channels, int seed) {
  Image img{w, h, channels, std::vector<std::uint8_t>(static_cast<std::size_t>(w) * h * channels)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        img.pixels[(static_cast<std::size_t>(y) * w + x) * channels + c] = static_cast<std::uint8_t>((seed + 7 * x + 13 * y + 29 * c) % 256);
  return img;
}

std::unique_ptr<Node> make_source(const std::string& yaml) {
  Registry r = test::builtin_registry();
  Diagnostics d;
  const NodeSpec* spec = r.find("image2d.sod");
  Params p = parse_params(parse_yaml(yaml, "p"), spec->params, {}, "image2d.sod", d);
  EXPECT_TRUE(d.empty()) << d.str();
  return spec->create(p);
}

/// An RGB-D root of two samples, a (RGB) and b (RGB stored as gray), 5 x 3 pixels.
void write_root(const std::string& root, const std::string& aux) {
  for (const char* f : {"/RGB", "/GT"}) std::filesystem::create_directories(root + f);
  std::filesystem::create_directories(root + "/" + aux);
  write_png(root + "/RGB/a.png", pattern(5, 3, 3, 1));
  write_png(root + "/" + aux + "/a.png", pattern(5, 3, 1, 50));
  write_png(root + "/GT/a.png", pattern(5, 3, 1, 90));
  write_png(root + "/RGB/b.png", pattern(5, 3, 1, 2));
  write_png(root + "/" + aux + "/b.png", pattern(5, 3, 3, 60));
  write_png(root + "/GT/b.png", pattern(5, 3, 1, 91));
}

std::string load_error(Node& node, std::int64_t index) {
  Context ctx(1, 0, index, "sod", true);
  try {
    static_cast<SourceNode&>(node).load(index, ctx);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Each sample's image is R, G, B then the second modality as PIL's gray (a
// gray RGB image replicated, a colour depth map converted), / 255, and its
// label the mask / 255, pixel for pixel; an RGB-T root reads T/.
TEST(SodSamples, ImageIsRgbThenGrayAuxAndLabelIsTheMask) {
  for (const std::string aux : {"depth", "T"}) {
    test::TempDir dir;
    write_root(dir.path(), aux);
    auto node = make_source("{root: " + dir.path() + ", aux: " + aux + "}");
    auto& source = static_cast<SourceNode&>(*node);
    ASSERT_EQ(source.size(), 2);
    Context ctx(1, 0, 0, "sod", true);
    for (std::int64_t i = 0; i < 2; ++i) {
      const Packet p = source.load(i, ctx);
      const std::string id = i == 0 ? "a" : "b";
      EXPECT_EQ(p.samples.at(0).id, id);
      const torch::Tensor image = p.at("image"), label = p.at("label");
      ASSERT_EQ(image.sizes(), (std::vector<std::int64_t>{4, 3, 5}));
      ASSERT_EQ(label.sizes(), (std::vector<std::int64_t>{1, 3, 5}));
      const Image rgb = pattern(5, 3, i == 0 ? 3 : 1, i == 0 ? 1 : 2), depth = pattern(5, 3, i == 0 ? 1 : 3, i == 0 ? 50 : 60),
                  gt = pattern(5, 3, 1, i == 0 ? 90 : 91);
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x) {
          for (int c = 0; c < 3; ++c)
            EXPECT_EQ(image[c][y][x].item<float>(), rgb.at(x, y, rgb.channels == 3 ? c : 0) / 255.0f) << id << " " << x << "," << y;
          // PIL's convert('L'): (19595 R + 38470 G + 7471 B + 32768) >> 16.
          const int gray = depth.channels == 1
                               ? depth.at(x, y, 0)
                               : (19595 * depth.at(x, y, 0) + 38470 * depth.at(x, y, 1) + 7471 * depth.at(x, y, 2) + 32768) >> 16;
          EXPECT_EQ(image[3][y][x].item<float>(), gray / 255.0f) << id << " " << x << "," << y;
          EXPECT_EQ(label[0][y][x].item<float>(), gt.at(x, y, 0) / 255.0f);
        }
    }
  }
}

// A pair of different sizes and an unreadable image fail with the sample and
// the files named; with on_bad_sample: skip they are skipped instead; with
// labels: false GT/ is not read, so a bad mask does not matter.
TEST(SodSamples, BadSamplesNameTheirFilesOrAreSkipped) {
  test::TempDir dir;
  const std::string root = dir.path();
  write_root(root, "depth");
  write_png(root + "/depth/a.png", pattern(4, 3, 1, 50));
  test::write_file(root + "/GT/b.png", test::read_file(root + "/GT/b.png").substr(0, 60));
  auto node = make_source("{root: " + root + "}");
  const std::string size = load_error(*node, 0);
  EXPECT_NE(size.find("sample a: '" + root + "/depth/a.png' is 4x3 pixels but its RGB image '" + root + "/RGB/a.png' is 5x3"),
            std::string::npos)
      << size;
  const std::string cut = load_error(*node, 1);
  EXPECT_NE(cut.find("sample b: '" + root + "/GT/b.png'"), std::string::npos) << cut;
  EXPECT_NE(cut.find("truncated"), std::string::npos) << cut;

  auto skipping = make_source("{root: " + root + ", on_bad_sample: skip}");
  Context ctx(1, 0, 0, "sod", true);
  EXPECT_THROW(static_cast<SourceNode&>(*skipping).load(0, ctx), SkipSample);
  EXPECT_THROW(static_cast<SourceNode&>(*skipping).load(1, ctx), SkipSample);

  auto unlabelled = make_source("{root: " + root + ", labels: false}");
  const Packet p = static_cast<SourceNode&>(*unlabelled).load(1, ctx);
  EXPECT_FALSE(p.has("label"));
  EXPECT_EQ(p.at("image").size(0), 4);
}

}  // namespace umrflow::image2d
