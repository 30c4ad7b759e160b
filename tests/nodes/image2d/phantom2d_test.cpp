#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "image2d/image_io.h"
#include "image2d/layouts.h"
#include "test_paths.h"
#include "test_util.h"

namespace umrflow::image2d {

namespace {

const std::string kBin = UMRFLOW_BINARY;

std::string synth(const std::string& kind, const std::string& args) {
  std::string log;
  EXPECT_EQ(test::run_command(kBin + " synth " + kind + " " + args + " 2>&1", &log), 0) << log;
  return log;
}

/// Mean of `img`'s samples inside (`inside` true) or outside the mask, per channel.
std::vector<double> mean_where(const Image& img, const Image& mask, bool inside) {
  std::vector<double> sum(static_cast<std::size_t>(img.channels), 0.0);
  double count = 0;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if ((mask.at(x, y, 0) > 0) == inside) {
        for (int c = 0; c < img.channels; ++c) sum[static_cast<std::size_t>(c)] += img.at(x, y, c);
        ++count;
      }
  for (auto& s : sum) s /= std::max(1.0, count);
  return sum;
}

double distance(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(d);
}

}  // namespace

// `synth rgbd` and `synth rgbt` write the public layouts (found by the SOD
// loader's discovery): RGB images, gray depth or thermal images and 0/255
// masks holding both values, all of the requested size; the same seed writes
// the same bytes, another seed other scenes.
TEST(ScenePhantoms, WriteTheSodLayoutsReproducibly) {
  test::TempDir dir;
  const std::string d = dir.path();
  synth("rgbd", "--scenes 3 --size 32 --seed 4 --out " + d + "/a");
  synth("rgbd", "--scenes 3 --size 32 --seed 4 --out " + d + "/b");
  synth("rgbd", "--scenes 3 --size 32 --seed 5 --out " + d + "/c");
  synth("rgbt", "--scenes 2 --size 24 --out " + d + "/t");
  const auto items = discover_sod(d + "/a", "depth", true);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].id, "0001");
  for (const auto& item : items) {
    const Image rgb = read_image(item.rgb), depth = read_image(item.aux), gt = read_image(item.gt);
    EXPECT_EQ(rgb.channels, 3);
    EXPECT_EQ(depth.channels, 1);
    EXPECT_EQ(gt.channels, 1);
    for (const Image* img : {&rgb, &depth, &gt}) {
      EXPECT_EQ(img->width, 32);
      EXPECT_EQ(img->height, 32);
    }
    bool zero = false, full = false;
    for (std::uint8_t v : gt.pixels) {
      EXPECT_TRUE(v == 0 || v == 255);
      zero = zero || v == 0;
      full = full || v == 255;
    }
    EXPECT_TRUE(zero && full) << item.gt;
    for (const std::string& folder : {"RGB", "depth", "GT"}) {
      const std::string name = "/" + folder + "/" + item.id + ".png";
      EXPECT_EQ(test::read_file(d + "/a" + name), test::read_file(d + "/b" + name)) << name;
      EXPECT_NE(test::read_file(d + "/a" + name), test::read_file(d + "/c" + name)) << name;
    }
  }
  const auto thermal = discover_sod(d + "/t", "T", true);
  ASSERT_EQ(thermal.size(), 2u);
  EXPECT_EQ(read_image(thermal[1].aux).width, 24);
}

// The object's cue is split between the images: across scenes its colour
// contrast with the background falls as its depth contrast rises (negative
// correlation), and in every scene at least one of the two shows it.
TEST(ScenePhantoms, TheObjectsCueIsSplitBetweenColourAndDepth) {
  test::TempDir dir;
  synth("rgbd", "--scenes 24 --size 48 --seed 9 --out " + dir.path());
  std::vector<double> colour, depth;
  for (const auto& item : discover_sod(dir.path(), "depth", true)) {
    const Image rgb = read_image(item.rgb), aux = read_image(item.aux), gt = read_image(item.gt);
    colour.push_back(distance(mean_where(rgb, gt, true), mean_where(rgb, gt, false)));
    depth.push_back(distance(mean_where(aux, gt, true), mean_where(aux, gt, false)));
    EXPECT_GT(std::max(colour.back(), depth.back()), 20.0) << item.id;
  }
  const double n = static_cast<double>(colour.size());
  double mc = 0, md = 0;
  for (std::size_t i = 0; i < colour.size(); ++i) mc += colour[i] / n, md += depth[i] / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (std::size_t i = 0; i < colour.size(); ++i) {
    sxy += (colour[i] - mc) * (depth[i] - md);
    sxx += (colour[i] - mc) * (colour[i] - mc);
    syy += (depth[i] - md) * (depth[i] - md);
  }
  const double correlation = sxy / std::sqrt(sxx * syy);
  EXPECT_LT(correlation, -0.3) << "colour and depth contrast across 24 scenes";
}

// `synth sunrgbd` writes the SUN-RGBD layout its discovery finds: the split lists name train then test ids, depth is
// 16-bit, labels are 0..classes with wall, floor and object pixels and unlabelled rings; the same seed, the same bytes.
TEST(SegmentationPhantoms, WriteTheSunRgbdLayoutReproducibly) {
  test::TempDir dir;
  const std::string a = dir.path() + "/a", b = dir.path() + "/b";
  synth("sunrgbd", "--train 5 --test 3 --size 40 --classes 6 --seed 4 --out " + a);
  synth("sunrgbd", "--train 5 --test 3 --size 40 --classes 6 --seed 4 --out " + b);
  const auto train = discover_sunrgbd(a, a + "/train.txt"), test = discover_sunrgbd(a, a + "/test.txt");
  ASSERT_EQ(train.size(), 5u);
  ASSERT_EQ(test.size(), 3u);
  EXPECT_EQ(train.front().id, "0001");
  EXPECT_EQ(test.front().id, "0006");
  std::vector<int> seen(7, 0);
  for (const auto& item : train) {
    const Plane depth = read_plane(item.aux), label = read_plane(item.gt);
    EXPECT_EQ(depth.bits, 16);
    EXPECT_EQ(read_image(item.rgb).channels, 3);
    ASSERT_EQ(label.width, 40);
    for (const std::uint16_t v : label.values) {
      ASSERT_LE(v, 6);
      ++seen[v];
    }
    for (const char* f : {"/image/", "/depth/", "/label/"})
      EXPECT_EQ(test::read_file(a + f + item.id + ".png"), test::read_file(b + f + item.id + ".png")) << item.id;
  }
  for (int v : {0, 1, 2}) EXPECT_GT(seen[v], 0) << v;
  EXPECT_GT(seen[3] + seen[4] + seen[5] + seen[6], 0);
}

// Object classes come in pairs: the two classes of a pair have the same colour (within a scene's illumination) and
// differ in depth shape (a flat slab: depth spread within sensor noise; a dome: spread by its bulge).
TEST(SegmentationPhantoms, PairsShareColourAndDifferInDepthShape) {
  test::TempDir dir;
  synth("sunrgbd", "--train 40 --test 1 --size 64 --classes 6 --seed 9 --out " + dir.path());
  int slabs = 0, domes = 0, pairs = 0;
  for (const auto& item : discover_sunrgbd(dir.path(), dir.path() + "/train.txt")) {
    const Image rgb = read_image(item.rgb);
    const Plane depth = read_plane(item.aux), label = read_plane(item.gt);
    std::vector<std::array<double, 3>> colour(7, {0, 0, 0});
    std::vector<double> n(7, 0), d(7, 0), d2(7, 0), nd(7, 0);
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x) {
        const int v = label.at(x, y);
        for (int c = 0; c < 3; ++c) colour[v][c] += rgb.at(x, y, c);
        n[v] += 1;
        if (depth.at(x, y) > 0) d[v] += depth.at(x, y), d2[v] += double(depth.at(x, y)) * depth.at(x, y), nd[v] += 1;
      }
    for (int v = 3; v <= 6; ++v) {
      if (nd[v] < 30) continue;
      const double sd = std::sqrt(d2[v] / nd[v] - (d[v] / nd[v]) * (d[v] / nd[v]));
      // An object may be partly covered by another of the same class at another distance: only small spreads count.
      if ((v - 3) % 2 == 0 && sd < 40) ++slabs;
      if ((v - 3) % 2 == 1 && sd > 60) ++domes;
    }
    for (int v = 3; v <= 5; v += 2)
      if (n[v] > 30 && n[v + 1] > 30) {
        ++pairs;
        for (int c = 0; c < 3; ++c) EXPECT_NEAR(colour[v][c] / n[v], colour[v + 1][c] / n[v + 1], 6.0) << item.id << " class " << v;
      }
  }
  EXPECT_GT(slabs, 10);
  EXPECT_GT(domes, 10);
  EXPECT_GT(pairs, 3);
}

}  // namespace umrflow::image2d
