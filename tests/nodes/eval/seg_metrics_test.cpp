#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/seg_metrics.h"
#include "nodes/node_harness.h"

namespace umrflow {

namespace {
std::vector<std::array<double, 3>> surface_points(const torch::Tensor& m) {
  std::vector<std::array<double, 3>> out;
  const auto X = m.size(0), Y = m.size(1), Z = m.size(2);
  auto at = [&](std::int64_t x, std::int64_t y, std::int64_t z) {
    return x >= 0 && y >= 0 && z >= 0 && x < X && y < Y && z < Z && m[x][y][z].item<bool>();
  };
  for (std::int64_t x = 0; x < X; ++x)
    for (std::int64_t y = 0; y < Y; ++y)
      for (std::int64_t z = 0; z < Z; ++z)
        if (at(x, y, z) && !(at(x - 1, y, z) && at(x + 1, y, z) && at(x, y - 1, z) && at(x, y + 1, z) && at(x, y, z - 1) && at(x, y, z + 1)))
          out.push_back({double(x), double(y), double(z)});
  return out;
}
double brute_p95(const std::vector<std::array<double, 3>>& a, const std::vector<std::array<double, 3>>& b, const std::vector<double>& sp) {
  std::vector<double> d;
  for (const auto& p : a) {
    double best = 1e30;
    for (const auto& q : b) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += std::pow((p[k] - q[k]) * sp[k], 2);
      best = std::min(best, std::sqrt(s));
    }
    d.push_back(best);
  }
  std::sort(d.begin(), d.end());
  const double pos = 0.95 * (d.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(pos), hi = std::min(lo + 1, d.size() - 1);
  return d[lo] + (d[hi] - d[lo]) * (pos - lo);
}
}  // namespace

// The distance transform equals brute force on random sparse seeds, with anisotropic spacing.
TEST(SegMetrics, DistanceTransformMatchesBruteForce) {
  torch::manual_seed(3);
  const torch::Tensor seeds = torch::rand({7, 6, 5}) < 0.05;
  const std::vector<double> sp{1.0, 2.0, 0.5};
  const torch::Tensor d = metrics::distance_to(seeds, sp);
  const torch::Tensor idx = seeds.nonzero();
  for (int x = 0; x < 7; ++x)
    for (int y = 0; y < 6; ++y)
      for (int z = 0; z < 5; ++z) {
        double best = std::numeric_limits<double>::infinity();
        for (std::int64_t k = 0; k < idx.size(0); ++k)
          best = std::min(best, std::sqrt(std::pow((x - idx[k][0].item<double>()) * sp[0], 2) + std::pow((y - idx[k][1].item<double>()) * sp[1], 2) +
                                          std::pow((z - idx[k][2].item<double>()) * sp[2], 2)));
        EXPECT_NEAR(d[x][y][z].item<double>(), best, 1e-9) << x << "," << y << "," << z;
      }
}

// HD95 equals a brute-force surface-to-surface computation on random blobs,
// and follows the documented empty-mask conventions.
TEST(SegMetrics, Hd95MatchesBruteForce) {
  torch::manual_seed(4);
  for (int trial = 0; trial < 3; ++trial) {
    const torch::Tensor a = torch::nn::functional::avg_pool3d(torch::rand({1, 1, 12, 11, 10}), torch::nn::functional::AvgPool3dFuncOptions(3).stride(1).padding(1))[0][0] > 0.55;
    const torch::Tensor b = torch::nn::functional::avg_pool3d(torch::rand({1, 1, 12, 11, 10}), torch::nn::functional::AvgPool3dFuncOptions(3).stride(1).padding(1))[0][0] > 0.55;
    ASSERT_TRUE(a.any().item<bool>() && b.any().item<bool>());
    const std::vector<double> sp{1, 1, 1};
    const auto sa = surface_points(a), sb = surface_points(b);
    EXPECT_NEAR(metrics::hd95(a, b), std::max(brute_p95(sa, sb, sp), brute_p95(sb, sa, sp)), 1e-9);
  }
  const torch::Tensor empty = torch::zeros({4, 4, 4}, torch::kBool);
  torch::Tensor one = empty.clone();
  one[1][1][1] = true;
  EXPECT_TRUE(std::isnan(metrics::hd95(one, empty)));
  EXPECT_NEAR(metrics::hd95(empty, one), std::sqrt(48.0), 1e-12);
  EXPECT_EQ(metrics::hd95(one, one), 0.0);
}

// Dice rules: MONAI leaves an empty ground truth out (NaN); RFNet scores an
// empty prediction of an empty ground truth 1 and any prediction ~0.
TEST(SegMetrics, DiceRules) {
  torch::Tensor g = torch::zeros({4, 4, 4}, torch::kBool), p = g.clone();
  g.narrow(0, 0, 2).fill_(true);  // 32 voxels
  p.narrow(0, 1, 2).fill_(true);  // 32 voxels, 16 shared
  EXPECT_DOUBLE_EQ(metrics::dice_monai(p, g), 0.5);
  EXPECT_NEAR(metrics::dice_rfnet(p, g), 0.5, 1e-9);
  const torch::Tensor none = torch::zeros({4, 4, 4}, torch::kBool);
  EXPECT_TRUE(std::isnan(metrics::dice_monai(p, none)));
  EXPECT_TRUE(std::isnan(metrics::dice_monai(none, none)));
  EXPECT_DOUBLE_EQ(metrics::dice_rfnet(none, none), 1.0);
  EXPECT_LT(metrics::dice_rfnet(p, none), 1e-9);
}

// The report: one row per subset in the given order, Average and Std Dev over
// subsets of the per-subset means (empty ground truth left out), the files.
TEST(SegMetrics, SubsetReportTables) {
  auto node = test::make_node("eval.subset_report", "{modalities: [rgb, depth], regions: [A, B], columns: [B, A], hd95: false}");
  auto& step = dynamic_cast<StepNode&>(*node);
  // 3 subsets x 2 cases; region A of case 2 is empty in the ground truth.
  torch::Tensor label = torch::zeros({2, 2, 4, 4, 4});
  label[0][0].narrow(0, 0, 2).fill_(1);
  label[0][1].narrow(0, 0, 4).fill_(1);
  label[1][1].narrow(0, 0, 2).fill_(1);
  torch::Tensor logits = torch::full({6, 2, 4, 4, 4}, -5.0);
  // subset 0: perfect; subset 1: region B of case 1 half right; subset 2: nothing predicted.
  logits.narrow(0, 0, 2).masked_fill_(label.to(torch::kBool), 5.0);
  logits.narrow(0, 2, 2).masked_fill_(label.to(torch::kBool), 5.0);
  logits[2][1].narrow(0, 2, 2).fill_(-5.0);  // B of case 1: 32 of 64 predicted -> Dice 2*32/(32+64)
  Packet pred, lab, present;
  pred.tensors["pred"] = logits;
  lab.tensors["label"] = label;
  lab.samples = {{0, "c1", {}}, {1, "c2", {}}};
  present.tensors["present"] = torch::tensor({1, 1, 1, 0, 0, 1}).view({3, 2});
  Context ctx(1, 0, 0, "report", false);
  step.run({pred, lab, present, Packet{}}, ctx);
  test::TempDir dir;
  step.finish(dir.path());
  std::ifstream in(dir.path() + "/report.csv");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], "present,dice_B,dice_A");
  EXPECT_EQ(lines[1], "Rgb+Depth,100.0000,100.0000");
  const double b1 = 100 * (2.0 * 32 / 96 + 1.0) / 2;  // subset 1, region B: mean of case 1 and case 2
  EXPECT_EQ(lines[2], "Rgb," + std::to_string(b1).substr(0, std::to_string(b1).find('.') + 5) + ",100.0000");
  EXPECT_EQ(lines[3], "Depth,0.0000,0.0000");
  const double avg_b = (100 + b1 + 0) / 3, avg_a = 200.0 / 3;
  const double sd_a = std::sqrt((2 * std::pow(100 - avg_a, 2) + std::pow(avg_a, 2)) / 3);
  EXPECT_NEAR(std::stod(lines[4].substr(lines[4].find(',') + 1)), avg_b, 1e-3);
  EXPECT_NEAR(std::stod(lines[5].substr(lines[5].rfind(',') + 1)), sd_a, 1e-3);
  for (const char* f : {"report.md", "report.json", "per_case.csv", "dice_boxplot.svg"})
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/" + f)) << f;
}

}  // namespace umrflow
