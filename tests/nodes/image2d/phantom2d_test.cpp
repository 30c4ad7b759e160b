#include <gtest/gtest.h>

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

}  // namespace umrflow::image2d
