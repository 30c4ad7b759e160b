#include <gtest/gtest.h>

#include <cmath>

#include "nodes/node_harness.h"

namespace umrflow {

using test::apply;
using test::make_node;
using test::sample;

// The foreground box is rounded up to multiples of k, grown symmetrically and
// zero-padded outside the volume, checked voxel by voxel against a brute force.
TEST(VolumeTransforms, CropForegroundMatchesBruteForce) {
  torch::Tensor img = torch::zeros({2, 10, 10, 10});
  img.slice(1, 2, 5).slice(2, 3, 7).slice(3, 0, 1).fill_(1);
  img[1][4][6][0] = 7;
  torch::Tensor label = torch::arange(1000, torch::kFloat32).view({1, 10, 10, 10});
  auto node = make_node("volume.crop_foreground", "{k_divisible: [4, 4, 4]}");
  Packet out = apply(*node, sample({{"image", img}, {"label", label}}));
  // Box: x 2..4 (len 3 -> 4, start 2), y 3..6 (len 4, start 3), z 0 (len 1 -> 4, start -1).
  EXPECT_EQ(out.samples[0].tags.at("foreground_start"), (std::vector<std::int64_t>{2, 3, -1}));
  ASSERT_EQ(out.at("image").sizes(), (c10::IntArrayRef{2, 4, 4, 4}));
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 4; ++k) {
        const int x = 2 + i, y = 3 + j, z = -1 + k;
        const bool inside = z >= 0 && z < 10;
        EXPECT_EQ(out.at("label")[0][i][j][k].item<float>(), inside ? label[0][x][y][z].item<float>() : 0.f);
        EXPECT_EQ(out.at("image")[1][i][j][k].item<float>(), inside ? img[1][x][y][z].item<float>() : 0.f);
      }
}

// A random crop is a window of the requested size at a uniform start, with
// image and label cut at the same place.
TEST(VolumeTransforms, RandomCropIsUniformAndAligned) {
  torch::Tensor img = torch::arange(6 * 5 * 4, torch::kFloat32).view({1, 6, 5, 4});
  auto node = make_node("volume.random_crop", "{size: [4, 8, 2]}");
  std::vector<int> starts(3, 0);
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    Packet out = apply(*node, sample({{"image", img}, {"label", img * 2}}), i);
    const auto s = out.samples[0].tags.at("crop_start");
    ASSERT_EQ(out.at("image").sizes(), (c10::IntArrayRef{1, 4, 5, 2}));  // y kept whole: shorter than 8
    EXPECT_EQ(s[1], 0);
    EXPECT_TRUE(torch::equal(out.at("image"), img.slice(1, s[0], s[0] + 4).slice(3, s[2], s[2] + 2)));
    EXPECT_TRUE(torch::equal(out.at("label"), out.at("image") * 2));
    starts[s[0]]++;
  }
  for (int v : starts) {  // x starts 0, 1, 2 each with probability 1/3
    EXPECT_GT(v, n * 0.29);
    EXPECT_LT(v, n * 0.38);
  }
}

// Each axis flips independently with probability p: 1/2 each, 1/4 both.
TEST(VolumeTransforms, FlipProbabilities) {
  torch::Tensor img = torch::arange(8, torch::kFloat32).view({1, 2, 2, 2});
  auto node = make_node("volume.random_flip", "{axes: [0, 2], p: 0.5}");
  int fx = 0, fz = 0, both = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    torch::Tensor o = apply(*node, sample({{"image", img}}), i).at("image");
    const bool is_x = torch::equal(o, img.flip({1})) || torch::equal(o, img.flip({1, 3}));
    const bool is_z = torch::equal(o, img.flip({3})) || torch::equal(o, img.flip({1, 3}));
    ASSERT_TRUE(is_x || is_z || torch::equal(o, img)) << "flipped along an axis not listed";
    fx += is_x;
    fz += is_z;
    both += is_x && is_z;
  }
  EXPECT_NEAR(fx / double(n), 0.5, 0.04);
  EXPECT_NEAR(fz / double(n), 0.5, 0.04);
  EXPECT_NEAR(both / double(n), 0.25, 0.03);
}

// rot90 with prob 1 turns by 1, 2 or 3 quarters, each about a third of the time.
TEST(VolumeTransforms, Rot90) {
  torch::Tensor img = torch::arange(16, torch::kFloat32).view({1, 4, 4, 1});
  auto node = make_node("volume.random_rot90", "{prob: 1.0}");
  std::vector<int> count(4, 0);
  const int n = 1500;
  for (int i = 0; i < n; ++i) {
    Packet out = apply(*node, sample({{"image", img}, {"label", img + 1}}), i);
    int k = 0;
    for (int q = 1; q <= 3; ++q)
      if (torch::equal(out.at("image"), torch::rot90(img, q, {1, 2}))) k = q;
    ASSERT_NE(k, 0);
    EXPECT_TRUE(torch::equal(out.at("label"), out.at("image") + 1));
    count[k]++;
  }
  for (int q = 1; q <= 3; ++q) EXPECT_NEAR(count[q] / double(n), 1.0 / 3, 0.05);
  auto never = make_node("volume.random_rot90", "{prob: 0.0}");
  EXPECT_TRUE(torch::equal(apply(*never, sample({{"image", img}})).at("image"), img));
}

// z-score of non-zero voxels per channel against a direct computation; zeros
// stay zero, a constant channel becomes 0 (std taken as 1).
TEST(VolumeTransforms, ZScoreNonzero) {
  torch::Tensor img = torch::rand({3, 5, 5, 5}) * 10 + 1;
  img.index_put_({0, torch::indexing::Slice(0, 2)}, 0);
  img[2].fill_(4);
  img[2][0][0][0] = 0;
  torch::Tensor out = apply(*make_node("volume.zscore_nonzero"), sample({{"image", img}})).at("image");
  for (int c = 0; c < 2; ++c) {
    auto nz = img[c] != 0;
    auto v = img[c].masked_select(nz).to(torch::kFloat64);
    const double mean = v.sum().item<double>() / v.numel();
    const double var = ((v - mean).pow(2)).sum().item<double>() / v.numel();
    auto expected = torch::where(nz, (img[c] - mean) / std::sqrt(var), torch::zeros_like(img[c]));
    EXPECT_TRUE(torch::allclose(out[c], expected.to(torch::kFloat32), 1e-4, 1e-5)) << c;
  }
  EXPECT_EQ(out[2][0][0][0].item<float>(), 0.f);
  EXPECT_EQ(out[2].abs().max().item<float>(), 0.f);
}

// A flip of tensors that only the sample holds happens in place and equals
// libtorch's flip for every combination of axes, on odd and even sizes, for
// float images and uint8 labels alike.
TEST(VolumeTransforms, InPlaceFlipEqualsTorchFlip) {
  torch::manual_seed(6);
  const torch::Tensor img = torch::randn({2, 5, 4, 7});
  const torch::Tensor label = torch::randint(0, 255, {3, 5, 4, 7}).to(torch::kUInt8);
  for (int mask = 1; mask < 8; ++mask) {
    std::vector<std::int64_t> axes, dims;
    for (int a = 0; a < 3; ++a)
      if (mask >> a & 1) axes.push_back(a), dims.push_back(a + 1);
    std::string list;
    for (auto a : axes) list += (list.empty() ? "" : ", ") + std::to_string(a);
    auto node = make_node("volume.random_flip", "{axes: [" + list + "], p: 1.0}");
    Packet p = sample({});
    p.tensors["image"] = img.clone();
    p.tensors["label"] = label.clone();
    const void* before = p.tensors["image"].data_ptr();
    Packet out = apply(*node, std::move(p));
    EXPECT_EQ(out.at("image").data_ptr(), before) << mask;  // no copy was made
    EXPECT_TRUE(torch::equal(out.at("image"), img.flip(dims))) << mask;
    EXPECT_TRUE(torch::equal(out.at("label"), label.flip(dims))) << mask;
  }
}

// The single-pass z-score equals the tensor-op formulation (masked_select,
// float64 mean and population std, masked_scatter) bit for bit, on a volume
// large enough for vectorised kernels, with negative zeros kept.
TEST(VolumeTransforms, ZScoreNonzeroEqualsTheTensorOpsBitForBit) {
  torch::manual_seed(4);
  torch::Tensor img = torch::randn({4, 37, 29, 33}) * 300 + 80;
  img.masked_fill_(torch::rand_like(img) < 0.3, 0);
  img[1][2][3][4] = -0.0f;
  img[3].zero_();
  torch::Tensor expected = img.clone();
  for (std::int64_t c = 0; c < 3; ++c) {
    torch::Tensor ch = expected[c];
    const torch::Tensor nz = ch != 0;
    const torch::Tensor v = ch.masked_select(nz).to(torch::kFloat64);
    const double mean = v.mean().item<double>();
    const double std = v.std(false).item<double>();
    ch.masked_scatter_(nz, ((v - mean) / std).to(torch::kFloat32));
  }
  torch::Tensor out = apply(*make_node("volume.zscore_nonzero"), sample({{"image", img}})).at("image");
  EXPECT_TRUE(torch::equal(out, expected));
  EXPECT_TRUE(std::signbit(out[1][2][3][4].item<float>()));
  EXPECT_FALSE(torch::equal(out, img));
}

// Scaling and shifting in place never changes a tensor that something else
// still holds (the caller's copy stays as it was).
TEST(VolumeTransforms, IntensityChangesLeaveSharedTensorsAlone) {
  torch::Tensor img = torch::rand({2, 4, 4, 4}) + 0.5;
  const torch::Tensor before = img.clone();
  for (const char* type : {"volume.random_scale_intensity", "volume.random_shift_intensity"}) {
    torch::Tensor changed = apply(*make_node(type), sample({{"image", img}}), 3).at("image");
    EXPECT_TRUE(torch::equal(img, before)) << type;
    EXPECT_FALSE(torch::equal(changed, before)) << type;
  }
}

// Intensity scale multiplies every voxel by one factor in [0.9, 1.1]; shift adds
// one offset in [-0.1, 0.1] to every voxel, background included.
TEST(VolumeTransforms, IntensityScaleAndShift) {
  torch::Tensor img = torch::rand({2, 4, 4, 4}) + 0.5;
  img[1][0][0][0] = 0;
  torch::Tensor scaled = apply(*make_node("volume.random_scale_intensity"), sample({{"image", img}}), 3).at("image");
  torch::Tensor ratio = (scaled / img).masked_select(img != 0);
  EXPECT_NEAR((ratio.max() - ratio.min()).item<double>(), 0.0, 1e-5);
  EXPECT_GE(ratio[0].item<double>(), 0.9 - 1e-6);
  EXPECT_LE(ratio[0].item<double>(), 1.1 + 1e-6);
  torch::Tensor shifted = apply(*make_node("volume.random_shift_intensity"), sample({{"image", img}}), 3).at("image");
  torch::Tensor diff = shifted - img;
  EXPECT_NEAR((diff.max() - diff.min()).item<double>(), 0.0, 1e-5);
  EXPECT_NE(shifted[1][0][0][0].item<float>(), 0.f);
  EXPECT_LE(std::abs(diff[0][0][0][0].item<double>()), 0.1 + 1e-6);
}

// The stage-1 target equals a per-channel, per-axial-slice min-max computed
// voxel by voxel; a constant slice maps to 0 (denominator clamped to 1e-5).
TEST(VolumeTransforms, SliceMinMaxTargetMatchesBruteForce) {
  torch::manual_seed(8);
  torch::Tensor x = torch::randn({2, 5, 4, 3}) * 7;
  x[1].select(2, 1).fill_(3.0);
  auto node = test::make_node("volume.slice_minmax_target");
  const Packet out = test::apply(*node, test::sample({{"image", x}}));
  const torch::Tensor t = out.at("target");
  for (int c = 0; c < 2; ++c)
    for (int z = 0; z < 3; ++z) {
      double lo = 1e30, hi = -1e30;
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 4; ++j) {
          lo = std::min(lo, x[c][i][j][z].item<double>());
          hi = std::max(hi, x[c][i][j][z].item<double>());
        }
      for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 4; ++j)
          EXPECT_NEAR(t[c][i][j][z].item<double>(), (x[c][i][j][z].item<double>() - lo) / std::max(hi - lo, 1e-5), 1e-5);
    }
  EXPECT_EQ(t[1].select(2, 1).abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(out.at("image"), x));
}

}  // namespace umrflow
