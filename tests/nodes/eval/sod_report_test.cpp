#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include <torch/torch.h>

#include "csv_util.h"
#include "nodes/node_harness.h"

namespace umrflow {


// Three subsets in the enumerator's order (both, depth only, RGB only) with
// maps of known scores: a perfect map (MAE 0, S-measure >= 1), a constant map
// (min-max leaves it at 0.5: MAE 0.5) and the inverted mask (MAE 1). The report
// lists RGB, Depth, RGB+Depth (Table 2's order), then the Average and the
// population Std Dev of each column over the three rows.
TEST(SodReport, Table2RowsWithClosedFormScores) {
  test::TempDir dir;
  auto node = test::make_node("eval.sod_report", "{modalities: [RGB, Depth]}");
  auto& step = dynamic_cast<StepNode&>(*node);
  torch::Tensor mask = torch::zeros({2, 1, 32, 32});
  mask.index_put_({0, 0, torch::indexing::Slice(8, 20), torch::indexing::Slice(4, 30)}, 1);
  mask.index_put_({1, 0, torch::indexing::Slice(2, 9), torch::indexing::Slice(10, 17)}, 1);
  const torch::Tensor perfect = (mask * 2 - 1) * 30, flat = torch::zeros_like(mask), inverted = -perfect;
  Packet pred, label, present;
  pred.tensors["pred"] = torch::cat({perfect, flat, inverted});
  label.tensors["label"] = mask;
  label.samples = {{0, "a.png", {}}, {1, "b.png", {}}};
  present.tensors["present"] = torch::tensor({1, 1, 0, 1, 1, 0}).view({3, 2});
  Context ctx(1, 0, 0, "report", false);
  Packet out = step.run({pred, label, present}, ctx);
  EXPECT_EQ(out.at("s_measure").sizes(), (std::vector<std::int64_t>{3, 2, 1}));
  // A later batch must list the same subsets in the same order, or its scores would land in other rows.
  Packet reordered = present;
  reordered.tensors["present"] = torch::tensor({1, 0, 0, 1, 1, 1}).view({3, 2});
  EXPECT_THROW(step.run({pred, label, reordered}, ctx), std::runtime_error);
  const auto figures = step.finish(dir.path());
  const auto rows = test::csv_rows(test::read_file(dir.path() + "/report.csv"));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"input", "s_measure", "max_f", "mean_f", "max_e", "mean_e", "mae"}));
  EXPECT_EQ(rows[1][0], "RGB");
  EXPECT_EQ(rows[2][0], "Depth");
  EXPECT_EQ(rows[3][0], "RGB+Depth");
  EXPECT_EQ(rows[4][0], "Average");
  EXPECT_EQ(rows[5][0], "Std Dev");
  EXPECT_DOUBLE_EQ(std::stod(rows[1][6]), 1.0);  // RGB only: the inverted mask
  EXPECT_DOUBLE_EQ(std::stod(rows[2][6]), 0.5);  // Depth only: constant
  EXPECT_DOUBLE_EQ(std::stod(rows[3][6]), 0.0);  // both: perfect
  EXPECT_GE(std::stod(rows[3][1]), 1.0);
  EXPECT_LT(std::stod(rows[1][1]), 0.1);
  for (std::size_t c = 1; c < rows[0].size(); ++c) {
    double v[3], mean = 0, sq = 0;
    for (int r = 0; r < 3; ++r) mean += (v[r] = std::stod(rows[1 + r][c])) / 3;
    for (double x : v) sq += (x - mean) * (x - mean) / 3;
    EXPECT_NEAR(std::stod(rows[4][c]), mean, 2e-6) << rows[0][c];
    EXPECT_NEAR(std::stod(rows[5][c]), std::sqrt(sq), 2e-6) << rows[0][c];
    EXPECT_NEAR(figures.at("average_" + rows[0][c]), mean, 2e-6);
  }
  const auto per_image = test::csv_rows(test::read_file(dir.path() + "/per_image.csv"));
  ASSERT_EQ(per_image.size(), 7u);
  EXPECT_EQ(per_image[1][0] + "/" + per_image[1][1], "RGB+Depth/a.png");
  // Maps of another size are resized back to the label's own size (bilinear on the logits, SSLSOD's protocol) before
  // scoring: a 16x16 prediction scores as its interpolation does.
  const torch::Tensor small = torch::randn({6, 1, 16, 16}, torch::kFloat64);
  const torch::Tensor upsampled = torch::nn::functional::interpolate(
      small, torch::nn::functional::InterpolateFuncOptions().size(std::vector<std::int64_t>{32, 32}).mode(torch::kBilinear).align_corners(false));
  auto fresh = [] { return test::make_node("eval.sod_report", "{modalities: [RGB, Depth]}"); };
  auto a = fresh(), b = fresh();
  pred.tensors["pred"] = small;
  const torch::Tensor sa = dynamic_cast<StepNode&>(*a).run({pred, label, present}, ctx).at("s_measure");
  pred.tensors["pred"] = upsampled;
  const torch::Tensor sb = dynamic_cast<StepNode&>(*b).run({pred, label, present}, ctx).at("s_measure");
  EXPECT_TRUE(torch::allclose(sa, sb, 1e-9, 1e-9));
  // A prediction whose rows do not hold the subsets of the label's images is refused with both shapes.
  pred.tensors["pred"] = torch::zeros({2, 1, 32, 32});
  try {
    step.run({pred, label, present}, ctx);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 1, 32, 32]"), std::string::npos) << e.what();
  }
}

// maps: true writes each subset's map as an 8-bit PNG named after the sample
// id, its folders joined by '_' (NJUD/0001 and NLPR/0001 stay apart).
TEST(SodReport, WritesSaliencyMapsOnRequest) {
  test::TempDir dir;
  auto node = test::make_node("eval.sod_report", "{modalities: [RGB, Thermal], maps: true}");
  auto& step = dynamic_cast<StepNode&>(*node);
  Packet pred, label, present;
  pred.tensors["pred"] = torch::randn({1, 1, 8, 8});
  label.tensors["label"] = (torch::rand({1, 1, 8, 8}) > 0.5).to(torch::kFloat32);
  label.samples = {{0, "NJUD/0001.jpg", {}}};
  present.tensors["present"] = torch::tensor({1, 1}).view({1, 2});
  Context ctx(1, 0, 0, "report", false);
  step.run({pred, label, present}, ctx);
  step.finish(dir.path());
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/maps/RGB+Thermal/NJUD_0001.png"));
}

}  // namespace umrflow
