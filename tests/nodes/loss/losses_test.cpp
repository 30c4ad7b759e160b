#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "loss/losses.h"
#include "nodes/node_harness.h"
#include "parity.h"

namespace umrflow {

using test::parity;

// Soft Dice equals a per-(sample, channel) loop in double precision.
TEST(UniMRSegLosses, DiceMatchesLoops) {
  torch::manual_seed(3);
  torch::Tensor logits = torch::randn({2, 3, 4, 4, 4}, torch::kFloat64);
  torch::Tensor target = (torch::rand({2, 3, 4, 4, 4}, torch::kFloat64) > 0.6).to(torch::kFloat64);
  target[1][2].zero_();  // an empty target channel
  double total = 0;
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 3; ++c) {
      double inter = 0, ps = 0, gs = 0;
      auto p = torch::sigmoid(logits[b][c]).flatten();
      auto g = target[b][c].flatten();
      for (int i = 0; i < p.numel(); ++i) {
        inter += p[i].item<double>() * g[i].item<double>();
        ps += p[i].item<double>();
        gs += g[i].item<double>();
      }
      total += 1.0 - (2 * inter + 1e-5) / (ps + gs + 1e-5);
    }
  EXPECT_NEAR(loss::soft_dice(logits, target).item<double>(), total / 6, 1e-10);
  // The node with a reference prediction uses sigmoid(reference) as a soft, detached target.
  auto node = test::make_node("loss.dice", "{target: sigmoid_detached}");
  Packet pred, ref;
  pred.tensors["pred"] = logits.to(torch::kFloat32).requires_grad_(true);
  ref.tensors["target"] = (logits.to(torch::kFloat32) * 2).requires_grad_(true);
  Context ctx(1, 0, 0, "dice", true);
  auto l = dynamic_cast<StepNode&>(*node).run({pred, ref}, ctx).at("loss");
  EXPECT_NEAR(l.item<double>(), loss::soft_dice(logits, torch::sigmoid(logits * 2)).item<double>(), 1e-5);
  l.backward();
  EXPECT_TRUE(pred.at("pred").grad().defined());
  EXPECT_FALSE(ref.at("target").grad().defined());
}

// 3D SSIM equals a direct windowed computation with explicit Gaussian weights
// at every valid position; identical images give loss 0.
TEST(UniMRSegLosses, SsimMatchesDirectWindows) {
  torch::manual_seed(4);
  const int n = 12, win = 11;
  torch::Tensor x = torch::rand({1, 1, n, n, n}, torch::kFloat64);
  torch::Tensor y = (x * 0.7 + 0.3 * torch::rand({1, 1, n, n, n}, torch::kFloat64)).clamp(0, 1);
  std::vector<double> g1(win);
  double gs = 0;
  for (int i = 0; i < win; ++i) gs += g1[i] = std::exp(-std::pow(i - 5.0, 2) / (2 * 1.5 * 1.5));
  for (auto& v : g1) v /= gs;
  auto xa = x.accessor<double, 5>(), ya = y.accessor<double, 5>();
  double sum = 0;
  for (int i0 = 0; i0 <= n - win; ++i0)
    for (int j0 = 0; j0 <= n - win; ++j0)
      for (int k0 = 0; k0 <= n - win; ++k0) {
        double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
        for (int i = 0; i < win; ++i)
          for (int j = 0; j < win; ++j)
            for (int k = 0; k < win; ++k) {
              const double w = g1[i] * g1[j] * g1[k], a = xa[0][0][i0 + i][j0 + j][k0 + k], b = ya[0][0][i0 + i][j0 + j][k0 + k];
              mx += w * a, my += w * b, xx += w * a * a, yy += w * b * b, xy += w * a * b;
            }
        const double c1 = 1e-4, c2 = 9e-4, vx = xx - mx * mx, vy = yy - my * my, cxy = xy - mx * my;
        sum += ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * ((2 * cxy + c2) / (vx + vy + c2));
      }
  const double expected = 1.0 - sum / 8.0;
  EXPECT_NEAR(loss::ssim(x, y).item<double>(), expected, 1e-9);
  EXPECT_NEAR(loss::ssim(x, x).item<double>(), 0.0, 1e-9);
  EXPECT_THROW(loss::ssim(torch::rand({1, 1, 8, 12, 12}), torch::rand({1, 1, 8, 12, 12})), std::runtime_error);
}

// 2D SSIM (MONAI's spatial_dims=2) on (B, C, H, W) equals a direct windowed
// computation per sample, channel and valid position, with a 7 x 7 window,
// sigma 1.2 and data range 2; the loss is the mean over samples of 1 - the
// per-sample mean over channels and positions. A 2D input smaller than the
// window and tensors of different ranks are refused.
TEST(UniMRSegLosses, Ssim2dMatchesDirectWindows) {
  torch::manual_seed(5);
  const int b = 2, c = 2, h = 10, w = 9, win = 7;
  const double sigma = 1.2, range = 2.0;
  const torch::Tensor x = torch::rand({b, c, h, w}, torch::kFloat64) * 2;
  const torch::Tensor y = (x * 0.6 + 0.8 * torch::rand({b, c, h, w}, torch::kFloat64)).clamp(0, 2);
  std::vector<double> g1(win);
  double gs = 0;
  for (int i = 0; i < win; ++i) gs += g1[i] = std::exp(-std::pow(i - 3.0, 2) / (2 * sigma * sigma));
  for (auto& v : g1) v /= gs;
  const auto xa = x.accessor<double, 4>(), ya = y.accessor<double, 4>();
  const double c1 = std::pow(0.01 * range, 2), c2 = std::pow(0.03 * range, 2);
  double loss = 0;
  for (int n = 0; n < b; ++n) {
    double sum = 0;
    int count = 0;
    for (int k = 0; k < c; ++k)
      for (int i0 = 0; i0 <= h - win; ++i0)
        for (int j0 = 0; j0 <= w - win; ++j0, ++count) {
          double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
          for (int i = 0; i < win; ++i)
            for (int j = 0; j < win; ++j) {
              const double g = g1[i] * g1[j], p = xa[n][k][i0 + i][j0 + j], q = ya[n][k][i0 + i][j0 + j];
              mx += g * p, my += g * q, xx += g * p * p, yy += g * q * q, xy += g * p * q;
            }
          sum += ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * ((2 * (xy - mx * my) + c2) / (xx - mx * mx + yy - my * my + c2));
        }
    loss += (1.0 - sum / count) / b;
  }
  EXPECT_NEAR(loss::ssim(x, y, win, sigma, range).item<double>(), loss, 1e-9);
  EXPECT_NEAR(loss::ssim(x, x, win, sigma, range).item<double>(), 0.0, 1e-9);
  EXPECT_THROW(loss::ssim(torch::rand({1, 1, 6, 12}), torch::rand({1, 1, 6, 12}), 7), std::runtime_error);
  EXPECT_THROW(loss::ssim(torch::rand({1, 1, 12, 12}), torch::rand({1, 1, 12, 12, 1})), std::runtime_error);
}

// NT-Xent reproduces the authors' code on their parity vector, and the paper
// variant (positive in the denominator) matches a hand computation.
TEST(UniMRSegLosses, NtXentParityAndPaperVariant) {
  torch::Tensor a = parity("nt_xent_code_variant/input0");
  if (!a.defined()) GTEST_SKIP() << "../shared/reference/unimrseg_parity_vectors.h5 is not beside the project";
  torch::Tensor b = parity("nt_xent_code_variant/input1");
  const double expected = parity("nt_xent_code_variant/output0").item<double>();
  // input0 = [A, A'] and input1 = [B, B']: per sample, complete = row 0, missing = row 1.
  torch::Tensor complete = torch::stack({a[0], b[0]}), missing = torch::stack({a[1], b[1]});
  EXPECT_NEAR(loss::nt_xent(complete, missing, 0.5, false).item<double>(), expected, 1e-5 * std::abs(expected) + 1e-7);
  torch::Tensor rows = torch::cat({a, b}).to(torch::kFloat64);
  double total = 0;
  for (int i = 0; i < 4; ++i) {
    double denom = 0;
    for (int k = 0; k < 4; ++k)
      if (k != i) denom += std::exp(rows[i].dot(rows[k]).item<double>() / 0.5);
    const int partner = i ^ 1;
    total += -std::log(std::exp(rows[i].dot(rows[partner]).item<double>() / 0.5) / denom);
  }
  EXPECT_NEAR(loss::nt_xent(complete, missing, 0.5, true).item<double>(), total / 4, 1e-5);
}

// L1 over listed keys sums the per-level mean absolute errors.
TEST(UniMRSegLosses, L1OverKeys) {
  auto node = test::make_node("loss.l1", "{keys: [features.1, features.2], detach_target: true}");
  Packet a, b;
  a.tensors["features.1"] = torch::tensor({1.0, 2.0});
  b.tensors["features.1"] = torch::tensor({0.0, 0.0});
  a.tensors["features.2"] = torch::tensor({3.0});
  b.tensors["features.2"] = torch::tensor({1.0});
  Context ctx(1, 0, 0, "l1", true);
  EXPECT_NEAR(dynamic_cast<StepNode&>(*node).run({a, b}, ctx).at("loss").item<double>(), 1.5 + 2.0, 1e-9);
}

// The stage-2 wiring: loss.nt_xent with pairing halves on the body's (A, A')
// and the key encoder's (B, B') features gives the authors' value.
TEST(UniMRSegLosses, NtXentNodeHalvesMatchesParity) {
  torch::Tensor a = parity("nt_xent_code_variant/input0");
  if (!a.defined()) GTEST_SKIP() << "../shared/reference/unimrseg_parity_vectors.h5 is not beside the project";
  auto node = test::make_node("loss.nt_xent", "{keys: [f], pairing: halves}");
  Packet body, key;
  body.tensors["f"] = a;
  key.tensors["f"] = parity("nt_xent_code_variant/input1");
  Context ctx(1, 0, 0, "nt", true);
  const double expected = parity("nt_xent_code_variant/output0").item<double>();
  EXPECT_NEAR(dynamic_cast<StepNode&>(*node).run({body, key}, ctx).at("loss").item<double>(), expected, 1e-5 * std::abs(expected) + 1e-7);
}

// A reference of B rows is repeated over the k*B rows of all subsets (Dice and
// L1 alike); rows that do not tile are an error naming both counts.
TEST(UniMRSegLosses, ReferenceRowsTile) {
  torch::manual_seed(1);
  const torch::Tensor pred = torch::randn({6, 3, 4, 4, 4}), ref = torch::randn({2, 3, 4, 4, 4});
  auto dice = test::make_node("loss.dice", "{target: sigmoid_detached}");
  Context ctx(1, 0, 0, "d", true);
  Packet p, r, rr;
  p.tensors["pred"] = pred;
  r.tensors["target"] = ref;
  rr.tensors["target"] = torch::cat({ref, ref, ref});
  auto& step = dynamic_cast<StepNode&>(*dice);
  EXPECT_NEAR(step.run({p, r}, ctx).at("loss").item<double>(), step.run({p, rr}, ctx).at("loss").item<double>(), 1e-7);
  auto l1 = test::make_node("loss.l1", "{keys: [features.1]}");
  Packet fa, fb;
  fa.tensors["features.1"] = pred;
  fb.tensors["features.1"] = ref;
  EXPECT_NEAR(dynamic_cast<StepNode&>(*l1).run({fa, fb}, ctx).at("loss").item<double>(),
              (pred - torch::cat({ref, ref, ref})).abs().mean().item<double>(), 1e-7);
  r.tensors["target"] = torch::randn({4, 3, 4, 4, 4});
  try {
    step.run({p, r}, ctx);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("4 rows"), std::string::npos) << e.what();
  }
}

// threshold_detached: the reference logits become the hard mask
// sigmoid > 0.5, i.e. Dice against a label equal to (logit > 0).
TEST(UniMRSegLosses, DiceAgainstThresholdedReference) {
  torch::manual_seed(3);
  const torch::Tensor pred = torch::randn({2, 3, 4, 4, 4}), ref = torch::randn({2, 3, 4, 4, 4});
  auto node = test::make_node("loss.dice", "{target: threshold_detached}");
  Packet p, r;
  p.tensors["pred"] = pred;
  r.tensors["target"] = ref;
  Context ctx(1, 0, 0, "d", true);
  EXPECT_NEAR(dynamic_cast<StepNode&>(*node).run({p, r}, ctx).at("loss").item<double>(),
              loss::soft_dice(pred, (ref > 0).to(torch::kFloat32)).item<double>(), 1e-7);
}

// A tempered, confidence-masked teacher: target sigmoid(ref / T), and only the
// voxels where |2 sigmoid(ref / T) - 1| >= c enter the sums, computed here by
// loops over the kept voxels.
TEST(UniMRSegLosses, DiceAgainstTemperedConfidentReference) {
  torch::manual_seed(5);
  const torch::Tensor pred = torch::randn({1, 2, 3, 3, 3}, torch::kFloat64), ref = torch::randn({1, 2, 3, 3, 3}, torch::kFloat64);
  const double T = 0.5, c = 0.6;
  double total = 0;
  for (int ch = 0; ch < 2; ++ch) {
    double inter = 0, ps = 0, gs = 0;
    const auto p = torch::sigmoid(pred[0][ch]).flatten(), q = torch::sigmoid(ref[0][ch] / T).flatten();
    for (int i = 0; i < p.numel(); ++i) {
      const double qi = q[i].item<double>();
      if (std::abs(2 * qi - 1) < c) continue;
      inter += p[i].item<double>() * qi;
      ps += p[i].item<double>();
      gs += qi;
    }
    total += 1.0 - (2 * inter + 1e-5) / (ps + gs + 1e-5);
  }
  auto node = test::make_node("loss.dice", "{target: sigmoid_detached, temperature: 0.5, confidence: 0.6}");
  Packet p, r;
  p.tensors["pred"] = pred;
  r.tensors["target"] = ref;
  Context ctx(1, 0, 0, "d", true);
  EXPECT_NEAR(dynamic_cast<StepNode&>(*node).run({p, r}, ctx).at("loss").item<double>(), total / 2, 1e-9);
  // At the released settings (T 1, c 0) the node is plain soft Dice against sigmoid(ref).
  auto plain = test::make_node("loss.dice", "{target: sigmoid_detached}");
  EXPECT_NEAR(dynamic_cast<StepNode&>(*plain).run({p, r}, ctx).at("loss").item<double>(),
              loss::soft_dice(pred, torch::sigmoid(ref)).item<double>(), 1e-12);
}

}  // namespace umrflow

namespace umrflow {

// The structure loss equals its definition computed pixel by pixel in double
// precision: the local mean over a window with the zeros beyond the border
// counted, the weighted BCE and the weighted IoU per image, then the mean.
TEST(UniMRSegLosses, StructureLossMatchesPixelLoops) {
  torch::manual_seed(5);
  const std::int64_t b = 2, h = 7, w = 9, k = 3;
  const double edge = 5.0;
  const torch::Tensor logits = torch::randn({b, 1, h, w}, torch::kFloat64) * 2;
  const torch::Tensor mask = (torch::rand({b, 1, h, w}, torch::kFloat64) > 0.6).to(torch::kFloat64);
  double total = 0;
  for (std::int64_t n = 0; n < b; ++n) {
    double sw = 0, swbce = 0, inter = 0, both = 0;
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) {
        double local = 0;
        for (std::int64_t dy = -k / 2; dy <= k / 2; ++dy)
          for (std::int64_t dx = -k / 2; dx <= k / 2; ++dx)
            if (y + dy >= 0 && y + dy < h && x + dx >= 0 && x + dx < w) local += mask[n][0][y + dy][x + dx].item<double>();
        local /= static_cast<double>(k * k);
        const double m = mask[n][0][y][x].item<double>(), z = logits[n][0][y][x].item<double>();
        const double weight = 1 + edge * std::abs(local - m);
        const double bce = std::max(z, 0.0) - z * m + std::log1p(std::exp(-std::abs(z)));
        const double p = 1 / (1 + std::exp(-z));
        sw += weight;
        swbce += weight * bce;
        inter += weight * p * m;
        both += weight * (p + m);
      }
    total += swbce / sw + 1 - (inter + 1) / (both - inter + 1);
  }
  EXPECT_NEAR(loss::structure_loss(logits, mask, k, edge).item<double>(), total / b, 1e-10);
  EXPECT_THROW(loss::structure_loss(logits, mask, 4, edge), std::runtime_error);
  EXPECT_THROW(loss::structure_loss(logits, mask.squeeze(1), k, edge), std::runtime_error);
}

}  // namespace umrflow
