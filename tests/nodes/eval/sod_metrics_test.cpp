#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>

#include "eval/sod_metrics.h"
#include "test_util.h"

namespace umrflow {

namespace {

using metrics::SmeasureStyle;

const char* const kPython = "/usr/bin/python3";
constexpr double kEps = 2.220446049250313e-16;

// The 4x4 case worked out by hand below.
//   pred               gt
//   1.0 0.5 0   0      1 1 0 0
//   0.5 1.0 0   0      1 1 0 0
//   0   0   0   0      0 0 0 0
//   0   0   0   0.5    0 0 0 0
torch::Tensor hand_pred() {
  return torch::tensor({1.0, 0.5, 0.0, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5}, torch::kFloat64)
      .view({4, 4});
}
torch::Tensor hand_gt() {
  torch::Tensor g = torch::zeros({4, 4}, torch::kFloat64);
  g.narrow(0, 0, 2).narrow(1, 0, 2).fill_(1);
  return g;
}

// A smooth random blob, neither empty nor full.
torch::Tensor blob(std::int64_t h, std::int64_t w, double cut = 0.5) {
  namespace F = torch::nn::functional;
  for (;;) {
    const torch::Tensor r = torch::rand({1, 1, h, w}, torch::kFloat64);
    const torch::Tensor g =
        (F::avg_pool2d(r, F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false))[0][0] > cut)
            .to(torch::kFloat64);
    const double s = g.sum().item<double>();
    if (s > 0 && s < static_cast<double>(h * w)) return g;
  }
}

// A prediction loosely following `gt`, in [0, 1].
torch::Tensor noisy(const torch::Tensor& gt, double quantum = 0) {
  torch::Tensor p = (0.55 * gt + 0.5 * torch::rand(gt.sizes(), torch::kFloat64)).clamp(0, 1);
  if (quantum > 0) p = (p / quantum).floor() * quantum;
  return p;
}

}  // namespace

// MAE and both S-measure styles on the 4x4 case equal hand arithmetic and PySODMetrics' output.
TEST(SodMetrics, MaeAndSmeasureHandComputed) {
  const torch::Tensor p = hand_pred(), g = hand_gt();
  // MAE: three pixels off by 0.5: 1.5 / 16.
  EXPECT_DOUBLE_EQ(metrics::mae(p, g), 1.5 / 16);

  // pysod. Object, u = 4/16:
  //   fg {1, .5, .5, 1}: mean .75, squared deviations .25, std sqrt(.25/3);
  //   bg 1 - pred: eleven 1s and one .5: mean 23/24, squared deviations
  //   11/576 + 121/576 = 132/576, std sqrt(132/576/11) = sqrt(1/48).
  const double o_py = 0.25 * (2 * 0.75) / (0.75 * 0.75 + 1 + std::sqrt(0.25 / 3)) +
                      0.75 * (2 * 23.0 / 24) / (std::pow(23.0 / 24, 2) + 1 + std::sqrt(1.0 / 48));
  // Region: foreground rows and columns average 0.5, rounded half to even to
  // 0, plus 1: cy = cx = 1 (rounding 0.5 up, as MATLAB does, would cut at 2).
  //   top-left, 1 pixel, pred 1 vs gt 1: every variance 0 -> a = b = 0 -> 1; weight 1/16.
  //   top-right [.5 0 0] vs [1 0 0]: x = 1/6, y = 1/3, divisor N-1 = 2:
  //     sx = (1/9 + 2/36)/2 = 1/12, sy = (4/9 + 2/9)/2 = 1/3, sxy = (2/9 + 2/18)/2 = 1/6;
  //     a = 4 (1/6)(1/3)(1/6) = 1/27, b = (1/36 + 1/9)(1/12 + 1/3) = 25/432 -> 16/25; weight 3/16.
  //   bottom-left: the transpose, 16/25; weight 3/16.
  //   bottom-right [[1 0 0] [0 0 0] [0 0 .5]] vs a single 1 at its corner: x = 1/6, y = 1/9, divisor 8:
  //     sx = (1.25 - 9/36)/8 = 1/8, sy = (1 - 1/9)/8 = 1/9, sxy = (1 - 1/6)/8 = 5/48;
  //     a = 4 (1/6)(1/9)(5/48) = 5/648, b = (13/324)(17/72) = 221/23328 -> 180/221; weight 9/16.
  const double r_py = 1.0 / 16 + 6.0 / 16 * 16 / 25 + 9.0 / 16 * 180 / 221;
  EXPECT_NEAR(metrics::s_measure(p, g, SmeasureStyle::pysod), 0.5 * o_py + 0.5 * r_py, 1e-12);
  EXPECT_NEAR(metrics::s_measure(p, g, SmeasureStyle::pysod), 0.8300536551792765, 1e-12);  // PySODMetrics Smeasure

  // sslsod: stds and variances over N, covariance over N-1, eps 1e-8.
  // SSLSOD itself returns NaN here (the 1-pixel quadrant's covariance is 0/0);
  // the header's convention gives that quadrant 1.
  //   fg std sqrt(.25/4) = .25; bg std sqrt(132/576/12) = sqrt(11/576).
  //   top-right: sx = (1/6)/3 = 1/18, sy = (2/3)/3 = 2/9, sxy = 1/6 -> a = 1/27, b = (5/36)(5/18) = 25/648 (~24/25).
  //   bottom-right: sx = 1/9, sy = (8/9)/9 = 8/81, sxy = 5/48 -> a = 5/648, b = (13/324)(17/81) = 221/26244 (~202.5/221).
  const double e8 = 1e-8;
  const double o_ssl =
      0.25 * 1.5 / (0.5625 + 1 + 0.25 + e8) + 0.75 * (2 * 23.0 / 24) / (std::pow(23.0 / 24, 2) + 1 + std::sqrt(11.0 / 576) + e8);
  const double r_ssl = 1.0 / 16 + 6.0 / 16 * (1.0 / 27) / (25.0 / 648 + e8) + 9.0 / 16 * (5.0 / 648) / (221.0 / 26244 + e8);
  EXPECT_NEAR(metrics::s_measure(p, g, SmeasureStyle::sslsod), 0.5 * o_ssl + 0.5 * r_ssl, 1e-12);
  EXPECT_NEAR(0.5 * o_ssl + 0.5 * r_ssl,
              0.5 * (0.25 * 1.5 / 1.8125 + 0.75 * (23.0 / 12) / (std::pow(23.0 / 24, 2) + 1 + std::sqrt(11.0 / 576))) +
                  0.5 * (1.0 / 16 + 6.0 / 16 * 24 / 25 + 9.0 / 16 * 202.5 / 221),
              1e-6);  // eps aside
  // alpha weighs object against region.
  EXPECT_NEAR(metrics::s_measure(p, g, SmeasureStyle::pysod, 1.0), o_py, 1e-12);
  EXPECT_NEAR(metrics::s_measure(p, g, SmeasureStyle::pysod, 0.0), r_py, 1e-12);
}

// F-measure on the 4x4 case: curves, max, mean and adaptive F by hand.
TEST(SodMetrics, FmeasureHandComputed) {
  // Levels uint8(p * 255): 1.0 -> 255, 0.5 -> 127 (127.5 truncated), 0 -> 0. |gt| = 4.
  //   t = 0: all 16 pixels: P = 4/16, R = 1 -> 1.3 (1/4) / (0.3/4 + 1) = 13/43.
  //   t = 1..127: the five pixels >= .5, four in gt: P = 4/5, R = 1 -> 1.04 / 1.24 = 26/31.
  //   t = 128..255: the two 1.0s: P = 1, R = 1/2 -> 0.65 / 0.8 = 13/16.
  // adaptive: threshold 2 * mean = 2 * 3.5/16 = .4375 -> the same five pixels -> 26/31.
  const metrics::FmeasureCurves c = metrics::f_measure(hand_pred(), hand_gt());
  for (int t = 0; t < 256; ++t) {
    const double want = t == 0 ? 13.0 / 43 : t <= 127 ? 26.0 / 31 : 13.0 / 16;
    EXPECT_NEAR(c.f.at[t], want, 1e-12) << t;
  }
  EXPECT_DOUBLE_EQ(c.precision.at[0], 0.25);
  EXPECT_DOUBLE_EQ(c.precision.at[127], 0.8);
  EXPECT_DOUBLE_EQ(c.precision.at[128], 1.0);
  EXPECT_DOUBLE_EQ(c.recall.at[127], 1.0);
  EXPECT_DOUBLE_EQ(c.recall.at[255], 0.5);
  EXPECT_NEAR(c.f.max(), 26.0 / 31, 1e-12);
  EXPECT_NEAR(c.f.mean(), (13.0 / 43 + 127 * 26.0 / 31 + 128 * 13.0 / 16) / 256, 1e-12);
  EXPECT_NEAR(c.f.mean(), 0.8235095883345835, 1e-12);  // PySODMetrics Fmeasure curve mean
  EXPECT_NEAR(c.adaptive, 26.0 / 31, 1e-12);
}

// E-measure on the 4x4 case: the three plateaus of the curve by hand.
TEST(SodMetrics, EmeasureHandComputed) {
  // N = 16, |gt| = 4, mg = 1/4. Per pixel a = [pred fg] - mp, b = [gt fg] - mg,
  // align = 2ab / (a^2 + b^2), enhanced = (align + 1)^2 / 4, E = sum / (N - 1).
  //   t = 0: every pixel foreground, mp = 1, so a = 0 and enhanced = 1/4 everywhere: E = 4/15.
  //   t = 1..127: mp = 5/16. 4 TP: a = 11/16, b = 12/16 -> align 264/265;
  //     1 FP: a = 11/16, b = -4/16 -> -88/137; 11 TN: a = -5/16, b = -4/16 -> 40/41.
  //   t = 128..255: mp = 2/16. 2 TP: a = 14/16, b = 12/16 -> 84/85;
  //     2 FN: a = -2/16, b = 12/16 -> -12/37; 12 TN: a = -2/16, b = -4/16 -> 4/5.
  auto enh = [](double align) { return (align + 1) * (align + 1) / 4; };
  const double e0 = 4.0 / 15;
  const double e1 = (4 * enh(264.0 / 265) + enh(-88.0 / 137) + 11 * enh(40.0 / 41)) / 15;
  const double e2 = (2 * enh(84.0 / 85) + 2 * enh(-12.0 / 37) + 12 * enh(4.0 / 5)) / 15;
  const metrics::EmeasureCurves c = metrics::e_measure(hand_pred(), hand_gt());
  for (int t = 0; t < 256; ++t) EXPECT_NEAR(c.e.at[t], t == 0 ? e0 : t <= 127 ? e1 : e2, 1e-12) << t;
  EXPECT_NEAR(c.e.max(), e1, 1e-12);
  EXPECT_NEAR(c.e.mean(), (e0 + 127 * e1 + 128 * e2) / 256, 1e-12);
  EXPECT_NEAR(c.e.max(), 0.9833496049588002, 1e-12);   // PySODMetrics Emeasure
  EXPECT_NEAR(c.e.mean(), 0.8863688798096099, 1e-12);  // PySODMetrics Emeasure
  EXPECT_NEAR(c.adaptive, e1, 1e-12);                  // threshold .4375: the t = 1..127 map
}

// Empty and full ground truth follow the references' special cases (closed forms on known levels).
TEST(SodMetrics, EmptyAndFullGroundTruth) {
  // Values 0, .25, .5, .75, 1 have levels 0, 63, 127, 191, 255.
  const std::vector<double> values{0.0, 0.25, 0.5, 0.75, 1.0};
  const int levels[] = {0, 63, 127, 191, 255};
  const torch::Tensor idx = torch::randint(0, 5, {4, 6}, torch::kInt64);
  const torch::Tensor p = torch::tensor(values, torch::kFloat64).index({idx});
  const double n = 24, mean = p.mean().item<double>();
  auto at_least = [&](int t) {  // pixels with level >= t
    double k = 0;
    for (std::int64_t i = 0; i < 24; ++i) k += levels[idx.view(-1)[i].item<std::int64_t>()] >= t;
    return k;
  };
  for (const SmeasureStyle style : {SmeasureStyle::pysod, SmeasureStyle::sslsod}) {
    EXPECT_NEAR(metrics::s_measure(p, torch::zeros({4, 6}), style), 1 - mean, 1e-12);
    EXPECT_NEAR(metrics::s_measure(p, torch::ones({4, 6}), style), mean, 1e-12);
  }
  EXPECT_NEAR(metrics::mae(p, torch::zeros({4, 6})), mean, 1e-12);
  EXPECT_NEAR(metrics::mae(p, torch::ones({4, 6})), 1 - mean, 1e-12);

  // Empty: no true positive anywhere, so F = 0; E counts the pixels predicted
  // background, level < t (none at t = 0, so E(0) = 0).
  const metrics::FmeasureCurves f0 = metrics::f_measure(p, torch::zeros({4, 6}));
  const metrics::EmeasureCurves e0 = metrics::e_measure(p, torch::zeros({4, 6}));
  for (int t = 0; t < 256; ++t) {
    EXPECT_EQ(f0.f.at[t], 0.0) << t;
    EXPECT_EQ(f0.recall.at[t], 0.0) << t;
    EXPECT_NEAR(e0.e.at[t], (n - at_least(t)) / (n - 1), 1e-12) << t;
  }
  EXPECT_EQ(f0.adaptive, 0.0);
  // Full: precision 1 wherever something is predicted, recall = predicted / N;
  // E counts the pixels predicted foreground.
  const metrics::FmeasureCurves f1 = metrics::f_measure(p, torch::ones({4, 6}));
  const metrics::EmeasureCurves e1 = metrics::e_measure(p, torch::ones({4, 6}));
  for (int t = 0; t < 256; ++t) {
    const double k = at_least(t);
    EXPECT_EQ(f1.precision.at[t], k > 0 ? 1.0 : 0.0) << t;
    EXPECT_NEAR(f1.recall.at[t], k / n, 1e-15) << t;
    EXPECT_NEAR(f1.f.at[t], k > 0 ? 1.3 * (k / n) / (0.3 + k / n) : 0.0, 1e-12) << t;
    EXPECT_NEAR(e1.e.at[t], k / (n - 1), 1e-12) << t;
  }
}

// Perfect maps score S 1 (sslsod 17/16), MAE 0, F 1, E N/(N-1); an inverted map clamps to 0 (sslsod -9/65).
TEST(SodMetrics, PerfectAndInvertedMaps) {
  torch::manual_seed(11);
  const torch::Tensor g = blob(9, 11);
  const double n = 99, k = g.sum().item<double>();
  EXPECT_NEAR(metrics::s_measure(g, g, SmeasureStyle::pysod), 1.0, 1e-12);
  EXPECT_EQ(metrics::mae(g, g), 0.0);
  const metrics::FmeasureCurves f = metrics::f_measure(g, g);
  const metrics::EmeasureCurves e = metrics::e_measure(g, g);
  // t = 0 predicts everything: P = k/n, R = 1; E: a = 0 for every pixel -> n/4.
  EXPECT_NEAR(f.f.at[0], 1.3 * (k / n) / (0.3 * (k / n) + 1), 1e-12);
  EXPECT_NEAR(e.e.at[0], n / 4 / (n - 1), 1e-12);
  for (int t = 1; t < 256; ++t) {
    EXPECT_NEAR(f.f.at[t], 1.0, 1e-12) << t;
    EXPECT_NEAR(e.e.at[t], n / (n - 1), 1e-12) << t;
  }
  EXPECT_NEAR(f.f.max(), 1.0, 1e-12);
  EXPECT_NEAR(e.e.max(), n / (n - 1), 1e-12);

  // 6x6, gt a 2x2 block at rows/cols 2..3, pred = 1 - gt. Object: pred is 0 on
  // gt and 1 - pred is 0 off it, so 0. Centroid 2.5 rounds half to even to 2,
  // cut at 3 (rounding up to 3 would leave pure quadrants scoring 1): each
  // 3x3 quadrant holds one gt pixel, y = 1/9, x = 8/9, and pred deviations
  // are the negated gt deviations, so with equal divisors
  // ssim = -2xy / (x^2 + y^2) = -16/65. Region -16/65, total -8/65 -> 0.
  // sslsod divides the variances by N and the covariance by N-1: 9/8 of
  // that, -18/65, total -9/65; with eps: sxy = -(8/9)/8 = -1/9, so
  // a = 4 (8/81)(-1/9) = -32/729, sx = sy = (8/9)/9 = 8/81, b = (65/81)(16/81) = 1040/6561.
  torch::Tensor g6 = torch::zeros({6, 6}, torch::kFloat64);
  g6.narrow(0, 2, 2).narrow(1, 2, 2).fill_(1);
  EXPECT_EQ(metrics::s_measure(1 - g6, g6, SmeasureStyle::pysod), 0.0);
  EXPECT_EQ(metrics::s_measure(1 - g6, g6, SmeasureStyle::pysod, 0.0), 0.0);
  const double inv_q = (-32.0 / 729) / (1040.0 / 6561 + 1e-8);
  EXPECT_NEAR(inv_q, -18.0 / 65, 1e-7);
  EXPECT_NEAR(metrics::s_measure(1 - g6, g6, SmeasureStyle::sslsod), 0.5 * inv_q, 1e-12);
  EXPECT_NEAR(metrics::s_measure(1 - g6, g6, SmeasureStyle::sslsod, 0.0), inv_q, 1e-12);
  // Perfect 6x6 map: object 1; pysod quadrants 1; sslsod quadrants
  // a = 4 (1/81)(1/9) = 4/729 over b = (2/81)(16/81) = 32/6561, i.e. 9/8, so
  // about 1/2 + 9/16 = 17/16 (SSLSOD prints 1.06249886).
  EXPECT_NEAR(metrics::s_measure(g6, g6, SmeasureStyle::pysod), 1.0, 1e-12);
  EXPECT_NEAR(metrics::s_measure(g6, g6, SmeasureStyle::sslsod), 0.5 * 2 / (2 + 1e-8) + 0.5 * (4.0 / 729) / (32.0 / 6561 + 1e-8),
              1e-12);
  EXPECT_NEAR(metrics::s_measure(g6, g6, SmeasureStyle::sslsod), 17.0 / 16, 2e-6);
  EXPECT_DOUBLE_EQ(metrics::mae(1 - g6, g6), 1.0);
  // Above threshold 0 the inverted map has no true positive (F 0) and every
  // pixel has align -1 (E 0).
  const metrics::FmeasureCurves fi = metrics::f_measure(1 - g6, g6);
  const metrics::EmeasureCurves ei = metrics::e_measure(1 - g6, g6);
  for (int t = 1; t < 256; ++t) {
    EXPECT_EQ(fi.f.at[t], 0.0) << t;
    EXPECT_NEAR(ei.e.at[t], 0.0, 1e-12) << t;
  }
}

// Quadrants left empty by a centroid on the last column are skipped instead of giving NaN.
TEST(SodMetrics, EmptyQuadrantIsSkipped) {
  // 4x4, gt the last column, pred 0.5 there. Centroid row 1.5 -> 2, column 3:
  // cy = 3, cx = 4 = W. Object: fg all .5 (std 0): 1 / 1.25 = .8; bg all 1: 1;
  // u = 1/4: .25 * .8 + .75 = .95. With pred = k gt every quadrant has
  // x = k y, sx = k^2 sy, sxy = k sy, so ssim = 4k^2 / (1 + k^2)^2 = .64 for
  // k = .5 with equal divisors; sslsod scales it by N/(N-1): 12/11 for the
  // 12-pixel top-left, 4/3 for the 4-pixel bottom-left. Weights 12/16, 4/16.
  // sslsod with its eps 1e-8: top-left x = 1/8, y = 1/4, sxy = 1.125/11,
  // sx = .5625/12, sy = 2.25/12; bottom-left sxy = .375/3, sx = .1875/4, sy = .75/4.
  torch::Tensor g = torch::zeros({4, 4}, torch::kFloat64);
  g.select(1, 3).fill_(1);
  const torch::Tensor p = 0.5 * g;
  const double s = metrics::s_measure(p, g, SmeasureStyle::pysod);
  ASSERT_TRUE(std::isfinite(s));
  EXPECT_NEAR(s, 0.5 * 0.95 + 0.5 * 0.64, 1e-12);
  const double lt = (4 * 0.125 * 0.25 * 1.125 / 11) / (5.0 / 64 * (0.5625 + 2.25) / 12 + 1e-8);
  const double lb = (4 * 0.125 * 0.25 * 0.375 / 3) / (5.0 / 64 * (0.1875 + 0.75) / 4 + 1e-8);
  EXPECT_NEAR(lt, 0.64 * 12 / 11, 1e-5);
  EXPECT_NEAR(lb, 0.64 * 4 / 3, 1e-5);
  const double o_ssl = 0.25 * 1 / (1.25 + 1e-8) + 0.75 * 2 / (2 + 1e-8);
  EXPECT_NEAR(metrics::s_measure(p, g, SmeasureStyle::sslsod), 0.5 * o_ssl + 0.5 * (0.75 * lt + 0.25 * lb), 1e-12);
}

// F and E curves equal per-threshold brute force (tensor masks; MATLAB's per-pixel E matrix).
TEST(SodMetrics, CurvesMatchPerThresholdBruteForce) {
  torch::manual_seed(5);
  const std::vector<std::pair<torch::Tensor, torch::Tensor>> cases = [] {
    std::vector<std::pair<torch::Tensor, torch::Tensor>> c;
    for (const auto& [h, w, q] : {std::tuple{7, 9, 0.0}, std::tuple{16, 16, 0.125}, std::tuple{23, 12, 0.0},
                                  std::tuple{1, 30, 0.0}, std::tuple{12, 17, 1.0 / 64}}) {
      const torch::Tensor g = h > 1 ? blob(h, w) : (torch::rand({1, w}, torch::kFloat64) > 0.6).to(torch::kFloat64);
      c.emplace_back(noisy(g, q), g);
    }
    c.emplace_back(torch::rand({5, 8}, torch::kFloat64), torch::zeros({5, 8}, torch::kFloat64));
    c.emplace_back(torch::rand({5, 8}, torch::kFloat64), torch::ones({5, 8}, torch::kFloat64));
    return c;
  }();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& [p, graw] = cases[i];
    SCOPED_TRACE("case " + std::to_string(i));
    const torch::Tensor g = graw > 0.5;
    const double n = static_cast<double>(p.numel()), big_g = g.sum().item<double>();
    const torch::Tensor level = (p * 255).floor();
    auto f_of = [&](const torch::Tensor& b, double* pre, double* rec) {
      const double tp = (b & g).sum().item<double>(), pp = b.sum().item<double>();
      *pre = pp > 0 ? tp / pp : 0.0;
      *rec = tp / std::max(big_g, 1.0);
      return tp > 0 ? 1.3 * *pre * *rec / (0.3 * *pre + *rec) : 0.0;
    };
    auto e_of = [&](const torch::Tensor& b) {
      const torch::Tensor fm = b.to(torch::kFloat64), gm = g.to(torch::kFloat64);
      torch::Tensor enhanced;
      if (big_g == 0) {
        enhanced = 1 - fm;
      } else if (big_g == n) {
        enhanced = fm;
      } else {
        const torch::Tensor af = fm - fm.mean(), ag = gm - gm.mean();
        const torch::Tensor align = 2 * ag * af / (ag * ag + af * af + kEps);
        enhanced = (align + 1).pow(2) / 4;
      }
      return enhanced.sum().item<double>() / (n - 1 + kEps);
    };
    const metrics::FmeasureCurves f = metrics::f_measure(p, graw);
    const metrics::EmeasureCurves e = metrics::e_measure(p, graw);
    for (int t = 0; t < 256; ++t) {
      const torch::Tensor b = level >= t;
      double pre = 0, rec = 0;
      EXPECT_NEAR(f.f.at[t], f_of(b, &pre, &rec), 1e-12) << t;
      EXPECT_NEAR(f.precision.at[t], pre, 1e-12) << t;
      EXPECT_NEAR(f.recall.at[t], rec, 1e-12) << t;
      EXPECT_NEAR(e.e.at[t], e_of(b), 1e-12) << t;
    }
    const torch::Tensor adaptive = p >= std::min(2 * p.mean().item<double>(), 1.0);
    double pre = 0, rec = 0;
    EXPECT_NEAR(f.adaptive, f_of(adaptive, &pre, &rec), 1e-12);
    EXPECT_NEAR(e.adaptive, e_of(adaptive), 1e-12);
  }
}

// S-measure in both styles equals an independent numpy implementation on random and degenerate maps.
TEST(SodMetrics, SmeasureMatchesNumpy) {
  if (test::run_command(std::string(kPython) + " -c 'import numpy' 2>/dev/null", nullptr) != 0)
    GTEST_SKIP() << "python3-numpy is not installed";
  torch::manual_seed(7);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> cases{{hand_pred(), hand_gt()}};
  for (const auto& [h, w] : {std::pair{8, 8}, std::pair{13, 21}, std::pair{30, 17}, std::pair{5, 40}, std::pair{24, 24}}) {
    const torch::Tensor g = blob(h, w);
    cases.emplace_back(noisy(g, h == 24 ? 0.25 : 0.0), g);
  }
  torch::Tensor corner = torch::zeros({5, 6}, torch::kFloat64);  // foreground in the last row: cy = H
  corner.select(0, 4).narrow(0, 1, 4).fill_(1);
  cases.emplace_back(noisy(corner), corner);

  test::TempDir dir;
  {
    std::ofstream out(dir.path() + "/maps.txt");
    out << std::setprecision(17);
    for (const auto& [p, g] : cases) {
      out << p.size(0) << " " << p.size(1) << "\n";
      for (const torch::Tensor& t : {p, g}) {
        const torch::Tensor c = t.contiguous();
        for (std::int64_t i = 0; i < c.numel(); ++i) out << c.data_ptr<double>()[i] << " ";
        out << "\n";
      }
    }
  }
  const std::string script = dir.write("sm.py", R"(import sys
import numpy as np

def s_measure(p, g, pysod):
    if not g.any():
        return 1 - p.mean()
    if g.all():
        return p.mean()
    eps = np.spacing(1.0) if pysod else 1e-8

    def obj(v):
        if pysod:
            sd = v.std(ddof=1) if v.size > 1 else 0.0
        else:
            sd = v.std()
        return 2 * v.mean() / (v.mean() ** 2 + 1 + sd + eps)

    u = g.mean()
    o = u * obj(p[g]) + (1 - u) * obj(1 - p[~g])
    ys, xs = np.nonzero(g)
    cy, cx = int(np.round(ys.mean())) + 1, int(np.round(xs.mean())) + 1
    h, w = g.shape
    r = 0.0
    for rows in (slice(0, cy), slice(cy, h)):
        for cols in (slice(0, cx), slice(cx, w)):
            a, b = p[rows, cols], g[rows, cols].astype(float)
            k = a.size
            if k == 0:
                continue
            x, y = a.mean(), b.mean()
            cov = ((a - x) * (b - y)).sum() / (k - 1) if k > 1 else 0.0
            if pysod:
                vx, vy = (a.var(ddof=1), b.var(ddof=1)) if k > 1 else (0.0, 0.0)
            else:
                vx, vy = a.var(), b.var()
            num, den = 4 * x * y * cov, (x * x + y * y) * (vx + vy)
            s = num / (den + eps) if num != 0 else (1.0 if den == 0 else 0.0)
            r += s * k / (h * w)
    total = 0.5 * o + 0.5 * r
    return max(total, 0.0) if pysod else total

lines = open(sys.argv[1]).read().split('\n')
for i in range(0, len(lines) - 2, 3):
    h, w = map(int, lines[i].split())
    p = np.array(lines[i + 1].split(), float).reshape(h, w)
    g = np.array(lines[i + 2].split(), float).reshape(h, w) > 0.5
    print(repr(float(s_measure(p, g, True))), repr(float(s_measure(p, g, False))))
)");
  std::string out;
  ASSERT_EQ(test::run_command(std::string(kPython) + " " + script + " " + dir.path() + "/maps.txt", &out), 0) << out;
  std::istringstream in(out);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    double want_py = 0, want_ssl = 0;
    ASSERT_TRUE(in >> want_py >> want_ssl) << out;
    EXPECT_NEAR(metrics::s_measure(cases[i].first, cases[i].second, SmeasureStyle::pysod), want_py, 1e-12) << "case " << i;
    EXPECT_NEAR(metrics::s_measure(cases[i].first, cases[i].second, SmeasureStyle::sslsod), want_ssl, 1e-12) << "case " << i;
  }
}

// Dataset max F is the max of the mean curve, not the mean of per-image maxima; the rest are means; add() returns the image's own scores.
TEST(SodMetrics, AccumulatorAveragesCurvesBeforeTheMax) {
  // Image A: the 4x4 case (F 13/43, 26/31 on t = 1..127, 13/16 above).
  // Image B: same gt, pred 1 on gt and .5 on the four pixels right of it:
  //   t = 1..127: P = 4/8, R = 1 -> .65 / 1.15 = 13/23; t >= 128: F = 1.
  // Mean curve: t = 1..127: (26/31 + 13/23) / 2 = .70196; t >= 128: (13/16 + 1) / 2 = 29/32.
  // So max F = 29/32, while the per-image maxima average (26/31 + 1) / 2 = .91935.
  torch::Tensor pb = hand_gt().clone();
  pb.narrow(0, 0, 2).narrow(1, 2, 2).fill_(0.5);
  metrics::SodAccumulator acc;
  EXPECT_TRUE(std::isnan(acc.result().s_measure));
  acc.add(hand_pred(), hand_gt());
  const metrics::SodAccumulator::ImageScores own_b = acc.add(pb, hand_gt());
  EXPECT_NEAR(own_b.mae, 2.0 / 16, 1e-12);
  EXPECT_NEAR(own_b.s_measure, metrics::s_measure(pb, hand_gt()), 1e-12);
  const metrics::SodScores s = acc.result();
  EXPECT_EQ(s.images, 2);
  EXPECT_NEAR(s.max_f, 29.0 / 32, 1e-12);
  const metrics::FmeasureCurves fa = metrics::f_measure(hand_pred(), hand_gt()), fb = metrics::f_measure(pb, hand_gt());
  const metrics::EmeasureCurves ea = metrics::e_measure(hand_pred(), hand_gt()), eb = metrics::e_measure(pb, hand_gt());
  EXPECT_NEAR(s.mean_f, (fa.f.mean() + fb.f.mean()) / 2, 1e-12);
  EXPECT_NEAR(s.adaptive_f, (fa.adaptive + fb.adaptive) / 2, 1e-12);
  double max_e = 0;
  for (int t = 0; t < 256; ++t) max_e = std::max(max_e, (ea.e.at[t] + eb.e.at[t]) / 2);
  EXPECT_NEAR(s.max_e, max_e, 1e-12);
  EXPECT_NEAR(s.mean_e, (ea.e.mean() + eb.e.mean()) / 2, 1e-12);
  EXPECT_NEAR(s.mae, (1.5 / 16 + 2.0 / 16) / 2, 1e-12);
  EXPECT_NEAR(s.s_measure, (metrics::s_measure(hand_pred(), hand_gt()) + metrics::s_measure(pb, hand_gt())) / 2, 1e-12);
  metrics::SodAccumulator ssl(SmeasureStyle::sslsod);
  ssl.add(pb, hand_gt());
  EXPECT_NEAR(ssl.result().s_measure, metrics::s_measure(pb, hand_gt(), SmeasureStyle::sslsod), 1e-12);
}

// Bad inputs throw naming the function; minmax_normalize rescales only non-constant maps.
TEST(SodMetrics, InputContract) {
  const torch::Tensor p = torch::full({3, 4}, 0.5), g = torch::zeros({3, 4});
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message([&] { metrics::s_measure(p, torch::zeros({4, 3})); }).find("s_measure: pred"), std::string::npos);
  EXPECT_NE(message([&] { metrics::mae(p.unsqueeze(0), g.unsqueeze(0)); }).find("mae"), std::string::npos);
  EXPECT_NE(message([&] { metrics::f_measure(p * 3, g); }).find("pred must lie in [0, 1]"), std::string::npos);
  EXPECT_NE(message([&] { metrics::e_measure(p, g + 255); }).find("gt must lie in [0, 1]"), std::string::npos);
  EXPECT_NO_THROW(metrics::s_measure(p.to(torch::kFloat32), g.to(torch::kBool)));
  const torch::Tensor r = metrics::minmax_normalize(torch::tensor({0.2, 0.4, 0.6}));
  EXPECT_TRUE(torch::allclose(r, torch::tensor({0.0, 0.5, 1.0}, torch::kFloat64)));
  EXPECT_TRUE(torch::equal(metrics::minmax_normalize(p), p.to(torch::kFloat64)));
}

// Confusion matrix, IoU, both mIoUs and accuracy by hand, in the raw-0 and the 255-void label conventions.
TEST(SodMetrics, ConfusionMatrixHandCounted) {
  // Raw gt [[1 1 2] [0 3 3]] -> classes [[0 0 1] [- 2 2]]; pred [[0 1 1] [2 2 0]].
  // Counted (gt, pred): (0,0) (0,1) (1,1) (2,2) (2,0); the ignored pixel's 2 is dropped.
  // Rows gt: [1 1 0], [0 1 0], [1 0 1]. Columns sum to 2, 2, 1.
  // IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 1 / (1 + 2 - 1) = 1/2; class 2: 1 / (2 + 1 - 1) = 1/2.
  const torch::Tensor raw = torch::tensor({1, 1, 2, 0, 3, 3}, torch::kInt64).view({2, 3});
  const torch::Tensor pred = torch::tensor({0, 1, 1, 2, 2, 0}, torch::kInt64).view({2, 3});
  metrics::ConfusionMatrix cm(metrics::ConfusionOptions{3, 0, 1});
  cm.add(pred, raw);
  EXPECT_TRUE(torch::equal(cm.matrix(), torch::tensor({1, 1, 0, 0, 1, 0, 1, 0, 1}, torch::kInt64).view({3, 3})));
  EXPECT_TRUE(torch::allclose(cm.iou(), torch::tensor({1.0 / 3, 0.5, 0.5}, torch::kFloat64)));
  EXPECT_NEAR(cm.miou(), 4.0 / 9, 1e-12);
  EXPECT_NEAR(cm.miou_present(), 4.0 / 9, 1e-12);
  EXPECT_NEAR(cm.pixel_accuracy(), 3.0 / 5, 1e-12);

  // The same labels stored as 0..2 with 255 for void, and a fourth class that
  // never occurs: it scores IoU 0 and counts in miou() but not miou_present().
  const torch::Tensor shifted = torch::where(raw == 0, torch::full_like(raw, 255), raw - 1);
  metrics::ConfusionMatrix cm4(metrics::ConfusionOptions{4, 255, 0});
  cm4.add(pred.to(torch::kInt32), shifted.to(torch::kUInt8));
  EXPECT_TRUE(torch::equal(cm4.matrix().narrow(0, 0, 3).narrow(1, 0, 3), cm.matrix()));
  EXPECT_EQ(cm4.iou()[3].item<double>(), 0.0);
  EXPECT_NEAR(cm4.miou(), (4.0 / 3) / 4, 1e-12);
  EXPECT_NEAR(cm4.miou_present(), 4.0 / 9, 1e-12);

  // merge adds; an empty matrix has no accuracy; the defaults are SUN-RGBD raw labels.
  metrics::ConfusionMatrix twice(metrics::ConfusionOptions{3, 0, 1});
  twice.merge(cm);
  twice.merge(cm);
  EXPECT_TRUE(torch::equal(twice.matrix(), 2 * cm.matrix()));
  // A copy counts on its own: adding to it leaves the original as it was.
  metrics::ConfusionMatrix copy = twice, assigned(metrics::ConfusionOptions{3, 0, 1});
  assigned = twice;
  copy.add(torch::tensor({0}), torch::tensor({1}));
  assigned.add(torch::tensor({1}), torch::tensor({1}));
  EXPECT_TRUE(torch::equal(twice.matrix(), 2 * cm.matrix()));
  EXPECT_EQ(copy.matrix().sum().item<std::int64_t>(), twice.matrix().sum().item<std::int64_t>() + 1);
  EXPECT_EQ(assigned.matrix().sum().item<std::int64_t>(), twice.matrix().sum().item<std::int64_t>() + 1);
  metrics::ConfusionMatrix sun;
  EXPECT_EQ(sun.matrix().size(0), 37);
  EXPECT_TRUE(std::isnan(sun.pixel_accuracy()));
  EXPECT_TRUE(std::isnan(sun.miou_present()));
  sun.add(torch::tensor({36, 0}), torch::tensor({37, 0}));  // raw 37 is class 36; raw 0 is void
  EXPECT_EQ(sun.matrix()[36][36].item<std::int64_t>(), 1);
  EXPECT_EQ(sun.matrix().sum().item<std::int64_t>(), 1);

  // Out-of-range labels and predictions throw; a prediction on a void pixel does not.
  EXPECT_THROW(cm.add(torch::tensor({0}), torch::tensor({4})), std::invalid_argument);
  EXPECT_THROW(cm.add(torch::tensor({3}), torch::tensor({1})), std::invalid_argument);
  EXPECT_THROW(cm.add(torch::tensor({0, 1}), torch::tensor({1})), std::invalid_argument);
  EXPECT_NO_THROW(cm.add(torch::tensor({9}), torch::tensor({0})));
}

// The confusion matrix and its scores equal ACNet-style per-class counting on random 37-class maps.
TEST(SodMetrics, ConfusionMatrixMatchesPerClassCounting) {
  torch::manual_seed(9);
  metrics::ConfusionMatrix cm;  // SUN-RGBD raw labels: 0 void, 1..37
  std::vector<double> inter(37, 0), area_gt(37, 0), area_pred(37, 0);
  double correct = 0, counted = 0;
  for (int image = 0; image < 3; ++image) {
    const torch::Tensor gt = torch::randint(0, 38, {20, 30}, torch::kInt64);
    // Mostly right (label - 1), else random, so every cell of the formula is exercised.
    const torch::Tensor pred =
        torch::where(torch::rand({20, 30}) < 0.6, (gt - 1).clamp_min(0), torch::randint(0, 37, {20, 30}, torch::kInt64));
    cm.add(pred, gt);
    const auto g = gt.accessor<std::int64_t, 2>();
    const auto p = pred.accessor<std::int64_t, 2>();
    for (int y = 0; y < 20; ++y)
      for (int x = 0; x < 30; ++x) {
        if (g[y][x] == 0) continue;
        const std::int64_t c = g[y][x] - 1;
        ++counted;
        ++area_gt[c];
        ++area_pred[p[y][x]];
        if (p[y][x] == c) {
          ++inter[c];
          ++correct;
        }
      }
  }
  const torch::Tensor iou = cm.iou();
  double sum = 0;
  for (int c = 0; c < 37; ++c) {
    const double uni = area_gt[c] + area_pred[c] - inter[c];
    const double want = inter[c] / (uni + 1e-10);  // ACNet's formula
    EXPECT_NEAR(iou[c].item<double>(), want, 1e-9) << c;
    EXPECT_EQ(cm.matrix().sum(1)[c].item<double>(), area_gt[c]) << c;
    EXPECT_EQ(cm.matrix().sum(0)[c].item<double>(), area_pred[c]) << c;
    sum += want;
  }
  EXPECT_NEAR(cm.miou(), sum / 37, 1e-9);
  EXPECT_NEAR(cm.pixel_accuracy(), correct / counted, 1e-12);
}

// A network output with NaN or infinite values is an error that counts them
// (the eval and predict nodes scored such outputs as Dice 0 and wrote empty
// label maps); finite outputs and integer tensors pass unchanged.
TEST(SodMetrics, NonFiniteNetworkOutputIsAnError) {
  torch::Tensor pred = torch::randn({2, 3, 4, 4});
  EXPECT_TRUE(metrics::require_finite_output(pred, "pred").equal(pred));
  EXPECT_NO_THROW(metrics::require_finite_output(torch::ones({3}, torch::kLong), "pred"));
  pred[0][1][2][3] = std::nan("");
  pred[1][0][0][0] = std::numeric_limits<float>::infinity();
  try {
    metrics::require_finite_output(pred, "logits");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("logits holds 2 NaN or infinite value(s) of 96"), std::string::npos) << e.what();
  }
}

}  // namespace umrflow
