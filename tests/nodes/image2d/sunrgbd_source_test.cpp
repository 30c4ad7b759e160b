#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>

#include "image2d/image_io.h"
#include "nodes/node_harness.h"

namespace umrflow::image2d {

namespace {

/// A 6 x 4 colour image whose sample (x, y, c) is (seed + 7x + 13y + 29c) mod 256.
Image colour(int seed) {
  Image img{6, 4, 3, std::vector<std::uint8_t>(6 * 4 * 3)};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x)
      for (int c = 0; c < 3; ++c) img.pixels[(static_cast<std::size_t>(y) * 6 + x) * 3 + c] = static_cast<std::uint8_t>((seed + 7 * x + 13 * y + 29 * c) % 256);
  return img;
}

/// A w x h plane of `bits` whose value at pixel i is f(i).
template <typename F>
Plane plane(int w, int h, int bits, F f) {
  Plane p;
  p.width = w, p.height = h, p.bits = bits;
  for (int i = 0; i < w * h; ++i) p.values.push_back(static_cast<std::uint16_t>(f(i)));
  return p;
}

/// A SUN-RGBD root with samples a (16-bit depth, gray labels) and b (8-bit
/// depth, palette labels) and a split list naming b then a.
void write_root(const std::string& root) {
  for (const char* f : {"/image", "/depth", "/label"}) std::filesystem::create_directories(root + f);
  write_png(root + "/image/a.png", colour(1));
  write_png(root + "/depth/a.png", plane(6, 4, 16, [](int i) { return 1000 + i * 2711; }));
  write_png(root + "/label/a.png", plane(6, 4, 8, [](int i) { return i % 38; }));
  write_png(root + "/image/b.png", colour(2));
  write_png(root + "/depth/b.png", plane(6, 4, 8, [](int i) { return i * 10; }));
  std::vector<std::array<std::uint8_t, 3>> palette(38, {{9, 9, 9}});
  write_png(root + "/label/b.png", plane(6, 4, 8, [](int i) { return 37 - i % 38; }), palette);
  test::write_file(root + "/test.txt", "# ids\nb\n  a  \n");
}

std::string load_error(Node& node, std::int64_t index) {
  Context ctx(1, 0, index, "sun", true);
  try {
    static_cast<SourceNode&>(node).load(index, ctx);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// Samples come in the list's order; image is R, G, B / 255 and depth / its file's range (all 16 bits of a 16-bit
// map, / 255 for an 8-bit one, or / depth_range; the toolbox's bit-rotated format turned back into millimetres), and
// label the stored class numbers (gray or palette indices).
TEST(SunRgbdSamples, ImageKeepsEveryDepthBitAndLabelTheClassNumbers) {
  test::TempDir dir;
  write_root(dir.path());
  auto node = test::make_node("image2d.sunrgbd", "{root: " + dir.path() + ", split: " + dir.path() + "/test.txt}");
  auto& source = static_cast<SourceNode&>(*node);
  ASSERT_EQ(source.size(), 2);
  Context ctx(1, 0, 0, "sun", true);
  const Packet b = source.load(0, ctx), a = source.load(1, ctx);
  EXPECT_EQ(a.samples.at(0).id, "a");
  EXPECT_EQ(b.samples.at(0).id, "b");
  ASSERT_EQ(a.at("image").sizes(), (std::vector<std::int64_t>{4, 4, 6}));
  ASSERT_EQ(a.at("label").sizes(), (std::vector<std::int64_t>{1, 4, 6}));
  EXPECT_EQ(a.at("label").scalar_type(), torch::kLong);
  const Image rgb = colour(1);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) {
      const int i = y * 6 + x;
      for (int c = 0; c < 3; ++c) EXPECT_EQ(a.at("image")[c][y][x].item<float>(), rgb.at(x, y, c) / 255.0f);
      EXPECT_FLOAT_EQ(a.at("image")[3][y][x].item<float>(), static_cast<float>((1000 + i * 2711) / 65535.0));
      EXPECT_FLOAT_EQ(b.at("image")[3][y][x].item<float>(), static_cast<float>(i * 10 / 255.0));
      EXPECT_EQ(a.at("label")[0][y][x].item<std::int64_t>(), i % 38);
      EXPECT_EQ(b.at("label")[0][y][x].item<std::int64_t>(), 37 - i % 38);
    }
  auto scaled = test::make_node("image2d.sunrgbd", "{root: " + dir.path() + ", split: " + dir.path() + "/test.txt, depth_range: 10000}");
  EXPECT_FLOAT_EQ(static_cast<SourceNode&>(*scaled).load(1, ctx).at("image")[3][0][1].item<float>(), 3711 / 10000.0f);
  // The toolbox's format: millimetres rotated left by 13 bits (right by 3) are turned back; an 8-bit map is refused.
  write_png(dir.path() + "/depth/a.png", plane(6, 4, 16, [](int i) {
              const unsigned mm = 500 + 97 * static_cast<unsigned>(i);
              return static_cast<std::uint16_t>((mm << 3) | (mm >> 13));
            }));
  auto toolbox = test::make_node("image2d.sunrgbd", "{root: " + dir.path() + ", split: " + dir.path() + "/test.txt, depth_format: toolbox, depth_range: 10000}");
  auto& tb = static_cast<SourceNode&>(*toolbox);
  const torch::Tensor depth = tb.load(1, ctx).at("image")[3];
  for (int i = 0; i < 24; ++i) EXPECT_FLOAT_EQ(depth[i / 6][i % 6].item<float>(), static_cast<float>((500 + 97 * i) / 10000.0)) << i;
  EXPECT_THROW(tb.load(0, ctx), std::runtime_error);
}

// A label above `classes`, a colour label map and a depth map of another size fail naming the file and the fix,
// or are skipped with on_bad_sample: skip; labels: false reads no label map.
TEST(SunRgbdSamples, BadSamplesNameTheirFilesOrAreSkipped) {
  test::TempDir dir;
  const std::string root = dir.path();
  write_root(root);
  const std::string params = "root: " + root + ", split: " + root + "/test.txt";
  auto few = test::make_node("image2d.sunrgbd", "{" + params + ", classes: 20}");
  const std::string range = load_error(*few, 1);
  EXPECT_NE(range.find("sample a: '" + root + "/label/a.png': pixel (3, 3)"), std::string::npos) << range;
  EXPECT_NE(range.find("has label 21, above classes: 20"), std::string::npos) << range;

  write_png(root + "/label/a.png", colour(3));
  write_png(root + "/depth/b.png", plane(5, 4, 16, [](int i) { return i; }));
  auto node = test::make_node("image2d.sunrgbd", "{" + params + "}");
  const std::string colour_label = load_error(*node, 1);
  EXPECT_NE(colour_label.find("'" + root + "/label/a.png'"), std::string::npos) << colour_label;
  EXPECT_NE(colour_label.find("lost its class numbers"), std::string::npos) << colour_label;
  const std::string size = load_error(*node, 0);
  EXPECT_NE(size.find("'" + root + "/depth/b.png' is 5x4 pixels but its RGB image '" + root + "/image/b.png' is 6x4"), std::string::npos)
      << size;

  auto skipping = test::make_node("image2d.sunrgbd", "{" + params + ", on_bad_sample: skip}");
  Context ctx(1, 0, 0, "sun", true);
  EXPECT_THROW(static_cast<SourceNode&>(*skipping).load(0, ctx), SkipSample);
  EXPECT_THROW(static_cast<SourceNode&>(*skipping).load(1, ctx), SkipSample);
  auto unlabelled = test::make_node("image2d.sunrgbd", "{" + params + ", labels: false}");
  const Packet p = static_cast<SourceNode&>(*unlabelled).load(1, ctx);
  EXPECT_FALSE(p.has("label"));
  EXPECT_EQ(p.at("image").size(0), 4);
}

}  // namespace umrflow::image2d
