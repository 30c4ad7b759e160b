#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include <torch/torch.h>

#include "csv_util.h"
#include "nodes/node_harness.h"

namespace umrflow {


// Three subsets (both, depth only, RGB only) over labels 0..3 (0 unlabelled): a perfect prediction (mIoU and pixel
// accuracy 100), one that says class 0 everywhere (IoU_0 = its share of counted pixels, the others 0) and one that is
// perfect on the first image only (closed form below). The report lists RGB, Depth, RGB+Depth, Average, Std Dev.
TEST(SegReport, Table2RowsWithClosedFormScores) {
  test::TempDir dir;
  auto node = test::make_node("eval.seg_report", "{classes: 3}");
  auto& step = dynamic_cast<StepNode&>(*node);
  // Two 2x4 label maps; 0 is unlabelled.
  const torch::Tensor label = torch::tensor({1, 1, 2, 0, 3, 3, 3, 0,  //
                                             2, 2, 2, 2, 1, 0, 0, 1},
                                            torch::kLong)
                                  .view({2, 1, 2, 4});
  const torch::Tensor cls = (label.squeeze(1) - 1).clamp_min(0);
  const torch::Tensor perfect = torch::one_hot(cls, 3).permute({0, 3, 1, 2}).to(torch::kFloat32) * 5;
  torch::Tensor zero = torch::zeros_like(perfect);
  zero.select(1, 0).fill_(1);
  torch::Tensor half = perfect.clone();
  half[1] = zero[1];
  Packet pred, lab, present;
  pred.tensors["pred"] = torch::cat({perfect, zero, half});
  lab.tensors["label"] = label;
  present.tensors["present"] = torch::tensor({1, 1, 0, 1, 1, 0}).view({3, 2});
  Context ctx(1, 0, 0, "report", false);
  const Packet out = step.run({pred, lab, present}, ctx);
  // Counted pixels: value 1: 2 + 2 = 4, value 2: 1 + 4 = 5, value 3: 3 + 0 = 3; 12 in all.
  const double all_zero_iou0 = 4.0 / 12;  // predicted class 0 everywhere counted: 12 pixels, 4 of them right
  // half: image 1 perfect (class 1: 2, class 2: 1, class 3: 3), image 2 all class 0 (4 labelled 2, 2 labelled 1).
  //   class 0: TP 2 + 2 = 4, FP 4, FN 0 -> 4/8; class 1: TP 1, FN 4 -> 1/5; class 2: TP 3 -> 1.
  const double half_miou = (4.0 / 8 + 1.0 / 5 + 1.0) / 3, half_acc = (6.0 + 2.0) / 12;
  EXPECT_NEAR(out.at("pixel_accuracy").item<double>(), (12 + 4 + 8) / 36.0, 1e-6);
  const auto figures = step.finish(dir.path());
  const auto rows = test::csv_rows(test::read_file(dir.path() + "/report.csv"));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"input", "miou", "miou_present", "pixel_accuracy"}));
  EXPECT_EQ(rows[1][0], "RGB");
  EXPECT_EQ(rows[2][0], "Depth");
  EXPECT_EQ(rows[3][0], "RGB+Depth");
  EXPECT_NEAR(std::stod(rows[3][1]), 100, 1e-6);
  EXPECT_NEAR(std::stod(rows[3][3]), 100, 1e-6);
  EXPECT_NEAR(std::stod(rows[2][1]), 100 * all_zero_iou0 / 3, 1e-4);
  EXPECT_NEAR(std::stod(rows[2][2]), 100 * all_zero_iou0 / 3, 1e-4);  // every class is in ground truth
  EXPECT_NEAR(std::stod(rows[2][3]), 100 * all_zero_iou0, 1e-4);
  EXPECT_NEAR(std::stod(rows[1][1]), 100 * half_miou, 1e-4);
  EXPECT_NEAR(std::stod(rows[1][3]), 100 * half_acc, 1e-4);
  const double mean = (100 + 100 * all_zero_iou0 / 3 + 100 * half_miou) / 3;
  EXPECT_NEAR(std::stod(rows[4][1]), mean, 1e-4);
  EXPECT_NEAR(figures.at("average_miou"), mean, 1e-4);
  double sq = 0;
  for (double v : {100.0, 100 * all_zero_iou0 / 3, 100 * half_miou}) sq += (v - mean) * (v - mean) / 3;
  EXPECT_NEAR(std::stod(rows[5][1]), std::sqrt(sq), 1e-4);
  const auto per_class = test::csv_rows(test::read_file(dir.path() + "/per_class.csv"));
  ASSERT_EQ(per_class.size(), 4u);
  EXPECT_EQ(per_class[0], (std::vector<std::string>{"input", "iou_0", "iou_1", "iou_2"}));
  EXPECT_NEAR(std::stod(per_class[1][2]), 0.2, 1e-6);
  // Channels other than `classes`, rows that do not hold the subsets, and fractional labels are refused.
  auto four = test::make_node("eval.seg_report", "{classes: 4}");
  EXPECT_THROW(dynamic_cast<StepNode&>(*four).run({pred, lab, present}, ctx), std::runtime_error);
  pred.tensors["pred"] = torch::zeros({3, 3, 2, 4});
  EXPECT_THROW(step.run({pred, lab, present}, ctx), std::runtime_error);
  Packet fractional;
  fractional.tensors["label"] = label.to(torch::kFloat32) + 0.5;
  pred.tensors["pred"] = torch::cat({perfect, zero, half});
  EXPECT_THROW(step.run({pred, fractional, present}, ctx), std::runtime_error);
}

// Logits of another size are resized back to the label map's (bilinear, then argmax, as ESANet scores): the report
// of a 4x8 prediction equals that of its explicit interpolation to 2x4.
TEST(SegReport, ScoresAtTheLabelsOwnSize) {
  torch::manual_seed(2);
  const torch::Tensor label = torch::randint(0, 4, {2, 1, 2, 4}, torch::kLong);
  const torch::Tensor big = torch::randn({6, 3, 4, 8});
  const torch::Tensor resized = torch::nn::functional::interpolate(
      big, torch::nn::functional::InterpolateFuncOptions().size(std::vector<std::int64_t>{2, 4}).mode(torch::kBilinear).align_corners(false));
  Packet lab, present;
  lab.tensors["label"] = label;
  present.tensors["present"] = torch::tensor({1, 1, 0, 1, 1, 0}).view({3, 2});
  Context ctx(1, 0, 0, "report", false);
  std::vector<std::vector<std::vector<std::string>>> reports;
  for (const torch::Tensor& p : {big, resized}) {
    test::TempDir dir;
    auto node = test::make_node("eval.seg_report", "{classes: 3}");
    auto& step = dynamic_cast<StepNode&>(*node);
    Packet pred;
    pred.tensors["pred"] = p;
    step.run({pred, lab, present}, ctx);
    step.finish(dir.path());
    reports.push_back(test::csv_rows(test::read_file(dir.path() + "/per_class.csv")));
  }
  EXPECT_EQ(reports[0], reports[1]);
}

}  // namespace umrflow
