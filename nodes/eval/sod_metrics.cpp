#include "eval/sod_metrics.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace umrflow::metrics {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMatlabEps = 2.220446049250313e-16;  // numpy.spacing(1)

/// A prediction and its binarised ground truth, row-major, float64.
struct Map {
  std::int64_t h = 0, w = 0;
  std::vector<double> p;
  std::vector<char> g;
  std::int64_t fg = 0;
  double mean_p = 0;
};

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

Map load(const torch::Tensor& pred, const torch::Tensor& gt, const char* what) {
  if (pred.dim() != 2 || pred.sizes() != gt.sizes() || pred.numel() == 0)
    throw std::invalid_argument(std::string(what) + ": pred " + shape_of(pred) + " and gt " + shape_of(gt) +
                                " must be 2D (H, W) of the same non-empty shape");
  const torch::Tensor p = pred.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const torch::Tensor g = gt.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  for (const auto& [t, name] : {std::pair{p, "pred"}, std::pair{g, "gt"}}) {
    const double lo = t.min().item<double>(), hi = t.max().item<double>();
    if (!(lo >= 0 && hi <= 1))
      throw std::invalid_argument(std::string(what) + ": " + name + " must lie in [0, 1], it spans [" + std::to_string(lo) +
                                  ", " + std::to_string(hi) + "]");
  }
  Map m;
  m.h = p.size(0);
  m.w = p.size(1);
  m.p.assign(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
  m.g.resize(m.p.size());
  const double* gd = g.data_ptr<double>();
  double sum = 0;
  for (std::size_t i = 0; i < m.p.size(); ++i) {
    m.g[i] = gd[i] > 0.5;
    m.fg += m.g[i];
    sum += m.p[i];
  }
  m.mean_p = sum / static_cast<double>(m.p.size());
  return m;
}

/// numpy.round / Python round: to nearest, ties to even.
double round_half_even(double v) {
  const double f = std::floor(v), d = v - f;
  return (d > 0.5 || (d == 0.5 && std::fmod(f, 2.0) != 0.0)) ? f + 1 : f;
}

double object_term(const std::vector<double>& v, SmeasureStyle style) {
  const double n = static_cast<double>(v.size());
  double sum = 0, ss = 0;
  for (double x : v) sum += x;
  const double mean = sum / n;
  for (double x : v) ss += (x - mean) * (x - mean);
  const bool pysod = style == SmeasureStyle::pysod;
  const double sd = pysod ? (v.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0) : std::sqrt(ss / n);
  return 2 * mean / (mean * mean + 1 + sd + (pysod ? kMatlabEps : 1e-8));
}

/// SSIM-like score of rows [r0, r1) x columns [c0, c1), not empty.
double quadrant_ssim(const Map& m, std::int64_t r0, std::int64_t r1, std::int64_t c0, std::int64_t c1, SmeasureStyle style) {
  const double n = static_cast<double>((r1 - r0) * (c1 - c0));
  double sx = 0, sy = 0;
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t c = c0; c < c1; ++c) {
      sx += m.p[r * m.w + c];
      sy += m.g[r * m.w + c];
    }
  const double x = sx / n, y = sy / n;
  double vxx = 0, vyy = 0, vxy = 0;
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t c = c0; c < c1; ++c) {
      const double dx = m.p[r * m.w + c] - x, dy = m.g[r * m.w + c] - y;
      vxx += dx * dx;
      vyy += dy * dy;
      vxy += dx * dy;
    }
  const bool pysod = style == SmeasureStyle::pysod;
  const double var_div = pysod ? n - 1 + kMatlabEps : n;
  const double cov = pysod ? vxy / (n - 1 + kMatlabEps) : (n > 1 ? vxy / (n - 1) : 0.0);
  const double a = 4 * x * y * cov;
  const double b = (x * x + y * y) * (vxx / var_div + vyy / var_div);
  if (a != 0) return a / (b + (pysod ? kMatlabEps : 1e-8));
  return b == 0 ? 1.0 : 0.0;
}

double region_term(const Map& m, SmeasureStyle style) {
  double rows = 0, cols = 0;
  for (std::int64_t r = 0; r < m.h; ++r)
    for (std::int64_t c = 0; c < m.w; ++c)
      if (m.g[r * m.w + c]) {
        rows += static_cast<double>(r);
        cols += static_cast<double>(c);
      }
  const double n = static_cast<double>(m.fg);
  const auto cy = static_cast<std::int64_t>(round_half_even(rows / n)) + 1;
  const auto cx = static_cast<std::int64_t>(round_half_even(cols / n)) + 1;
  const double area = static_cast<double>(m.h * m.w);
  const double w_lt = static_cast<double>(cx * cy) / area, w_rt = static_cast<double>(cy * (m.w - cx)) / area,
               w_lb = static_cast<double>((m.h - cy) * cx) / area;
  const double w_rb =
      style == SmeasureStyle::pysod ? 1 - w_lt - w_rt - w_lb : static_cast<double>((m.h - cy) * (m.w - cx)) / area;
  const struct {
    std::int64_t r0, r1, c0, c1;
    double weight;
  } quads[] = {{0, cy, 0, cx, w_lt}, {0, cy, cx, m.w, w_rt}, {cy, m.h, 0, cx, w_lb}, {cy, m.h, cx, m.w, w_rb}};
  double score = 0;
  for (const auto& q : quads)
    if (q.r1 > q.r0 && q.c1 > q.c0) score += quadrant_ssim(m, q.r0, q.r1, q.c0, q.c1, style) * q.weight;
  return score;
}

/// Pixels with level >= t inside (tp) and outside (fp) the ground truth.
void cumulative_counts(const Map& m, std::array<std::int64_t, 256>& tp, std::array<std::int64_t, 256>& fp) {
  std::array<std::int64_t, 256> fg_hist{}, bg_hist{};
  for (std::size_t i = 0; i < m.p.size(); ++i) {
    const auto level = static_cast<int>(m.p[i] * 255);  // numpy astype(uint8) truncates
    ++(m.g[i] ? fg_hist : bg_hist)[level];
  }
  std::int64_t a = 0, b = 0;
  for (int t = 255; t >= 0; --t) {
    tp[t] = a += fg_hist[t];
    fp[t] = b += bg_hist[t];
  }
}

/// Counts of the binary map `pred >= adaptive threshold`.
void adaptive_counts(const Map& m, std::int64_t& tp, std::int64_t& fp) {
  const double threshold = std::min(2 * m.mean_p, 1.0);
  tp = fp = 0;
  for (std::size_t i = 0; i < m.p.size(); ++i)
    if (m.p[i] >= threshold) ++(m.g[i] ? tp : fp);
}

double f_from_counts(std::int64_t tp, std::int64_t fp, std::int64_t g, double beta2, double* precision, double* recall) {
  const std::int64_t p = tp + fp;
  const double pre = static_cast<double>(tp) / static_cast<double>(p == 0 ? 1 : p);
  const double rec = static_cast<double>(tp) / static_cast<double>(std::max<std::int64_t>(g, 1));
  if (precision) *precision = pre;
  if (recall) *recall = rec;
  const double num = (1 + beta2) * pre * rec;
  return num == 0 ? 0.0 : num / (beta2 * pre + rec);
}

double e_from_counts(std::int64_t tp, std::int64_t fp, std::int64_t g, std::int64_t n) {
  const std::int64_t pred_fg = tp + fp, pred_bg = n - pred_fg;
  double sum;
  if (g == 0) {
    sum = static_cast<double>(pred_bg);
  } else if (g == n) {
    sum = static_cast<double>(pred_fg);
  } else {
    const double mp = static_cast<double>(pred_fg) / static_cast<double>(n), mg = static_cast<double>(g) / static_cast<double>(n);
    const std::int64_t fn = g - tp, tn = pred_bg - fn;
    const struct {
      std::int64_t count;
      double a, b;
    } parts[] = {{tp, 1 - mp, 1 - mg}, {fp, 1 - mp, -mg}, {fn, -mp, 1 - mg}, {tn, -mp, -mg}};
    sum = 0;
    for (const auto& part : parts) {
      const double align = 2 * part.a * part.b / (part.a * part.a + part.b * part.b + kMatlabEps);
      sum += (align + 1) * (align + 1) / 4 * static_cast<double>(part.count);
    }
  }
  return sum / (static_cast<double>(n) - 1 + kMatlabEps);
}
}  // namespace

torch::Tensor minmax_normalize(const torch::Tensor& pred) {
  const torch::Tensor p = pred.to(torch::kFloat64);
  const torch::Tensor lo = p.min(), hi = p.max();
  if (!(hi > lo).item<bool>()) return p.clone();
  return (p - lo) / (hi - lo);
}

double mae(const torch::Tensor& pred, const torch::Tensor& gt) {
  const Map m = load(pred, gt, "mae");
  double sum = 0;
  for (std::size_t i = 0; i < m.p.size(); ++i) sum += std::abs(m.p[i] - static_cast<double>(m.g[i]));
  return sum / static_cast<double>(m.p.size());
}

double s_measure(const torch::Tensor& pred, const torch::Tensor& gt, SmeasureStyle style, double alpha) {
  const Map m = load(pred, gt, "s_measure");
  const std::int64_t n = m.h * m.w;
  if (m.fg == 0) return 1 - m.mean_p;
  if (m.fg == n) return m.mean_p;
  std::vector<double> fg, bg;
  for (std::size_t i = 0; i < m.p.size(); ++i) {
    if (m.g[i])
      fg.push_back(m.p[i]);
    else
      bg.push_back(1 - m.p[i]);
  }
  const double u = static_cast<double>(m.fg) / static_cast<double>(n);
  const double object = u * object_term(fg, style) + (1 - u) * object_term(bg, style);
  const double score = alpha * object + (1 - alpha) * region_term(m, style);
  return style == SmeasureStyle::pysod ? std::max(0.0, score) : score;
}

double ThresholdCurve::max() const { return *std::max_element(at.begin(), at.end()); }

double ThresholdCurve::mean() const {
  double s = 0;
  for (double v : at) s += v;
  return s / static_cast<double>(at.size());
}

FmeasureCurves f_measure(const torch::Tensor& pred, const torch::Tensor& gt, double beta2) {
  const Map m = load(pred, gt, "f_measure");
  std::array<std::int64_t, 256> tp{}, fp{};
  cumulative_counts(m, tp, fp);
  FmeasureCurves out;
  for (int t = 0; t < 256; ++t) out.f.at[t] = f_from_counts(tp[t], fp[t], m.fg, beta2, &out.precision.at[t], &out.recall.at[t]);
  std::int64_t atp = 0, afp = 0;
  adaptive_counts(m, atp, afp);
  out.adaptive = atp == 0 ? 0.0 : f_from_counts(atp, afp, m.fg, beta2, nullptr, nullptr);
  return out;
}

EmeasureCurves e_measure(const torch::Tensor& pred, const torch::Tensor& gt) {
  const Map m = load(pred, gt, "e_measure");
  const std::int64_t n = m.h * m.w;
  std::array<std::int64_t, 256> tp{}, fp{};
  cumulative_counts(m, tp, fp);
  EmeasureCurves out;
  for (int t = 0; t < 256; ++t) out.e.at[t] = e_from_counts(tp[t], fp[t], m.fg, n);
  std::int64_t atp = 0, afp = 0;
  adaptive_counts(m, atp, afp);
  out.adaptive = e_from_counts(atp, afp, m.fg, n);
  return out;
}

SodAccumulator::ImageScores SodAccumulator::add(const torch::Tensor& pred, const torch::Tensor& gt) {
  const FmeasureCurves f = f_measure(pred, gt);
  const EmeasureCurves e = e_measure(pred, gt);
  const ImageScores own{s_measure(pred, gt, style_), mae(pred, gt)};
  mae_ += own.mae;
  sm_ += own.s_measure;
  adaptive_f_ += f.adaptive;
  adaptive_e_ += e.adaptive;
  for (int t = 0; t < 256; ++t) {
    f_.at[t] += f.f.at[t];
    e_.at[t] += e.e.at[t];
  }
  ++n_;
  return own;
}

SodScores SodAccumulator::result() const {
  SodScores s;
  s.images = n_;
  const double n = n_ == 0 ? kNaN : static_cast<double>(n_);
  ThresholdCurve f = f_, e = e_;
  for (int t = 0; t < 256; ++t) {
    f.at[t] /= n;
    e.at[t] /= n;
  }
  s.mae = mae_ / n;
  s.s_measure = sm_ / n;
  s.adaptive_f = adaptive_f_ / n;
  s.adaptive_e = adaptive_e_ / n;
  s.max_f = f.max();
  s.mean_f = f.mean();
  s.max_e = e.max();
  s.mean_e = e.mean();
  return s;
}

ConfusionMatrix::ConfusionMatrix(ConfusionOptions options)
    : options_(options), matrix_(torch::zeros({options.num_classes, options.num_classes}, torch::kInt64)) {
  if (options.num_classes < 1) throw std::invalid_argument("ConfusionMatrix: num_classes must be at least 1");
}

void ConfusionMatrix::add(const torch::Tensor& pred, const torch::Tensor& gt) {
  if (pred.sizes() != gt.sizes())
    throw std::invalid_argument("ConfusionMatrix::add: pred " + shape_of(pred) + " and gt " + shape_of(gt) + " differ in shape");
  const std::int64_t c = options_.num_classes;
  torch::Tensor g = gt.detach().to(torch::kCPU, torch::kInt64).reshape(-1);
  torch::Tensor p = pred.detach().to(torch::kCPU, torch::kInt64).reshape(-1);
  const torch::Tensor keep = g != options_.ignore_label;
  g = g.masked_select(keep) - options_.gt_offset;
  p = p.masked_select(keep);
  if (g.numel() == 0) return;
  auto check = [c](const torch::Tensor& t, const char* what, std::int64_t shift, const std::string& note) {
    const std::int64_t lo = t.min().item<std::int64_t>(), hi = t.max().item<std::int64_t>();
    if (lo < 0 || hi >= c) {
      const std::int64_t bad = lo < 0 ? lo : hi;
      throw std::invalid_argument(std::string("ConfusionMatrix::add: ") + what + " " + std::to_string(bad + shift) +
                                  " is outside the " + std::to_string(c) + " classes" + note);
    }
  };
  check(g, "ground-truth label", options_.gt_offset,
        " (labels " + std::to_string(options_.gt_offset) + ".." + std::to_string(options_.gt_offset + c - 1) + ", ignore " +
            std::to_string(options_.ignore_label) + ")");
  check(p, "predicted class", 0, " (0.." + std::to_string(c - 1) + ")");
  matrix_ += torch::bincount(g * c + p, {}, c * c).view({c, c});
}

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  if (other.options_.num_classes != options_.num_classes)
    throw std::invalid_argument("ConfusionMatrix::merge: " + std::to_string(other.options_.num_classes) + " classes into " +
                                std::to_string(options_.num_classes));
  matrix_ += other.matrix_;
}

torch::Tensor ConfusionMatrix::iou() const {
  const torch::Tensor m = matrix_.to(torch::kFloat64);
  const torch::Tensor tp = m.diagonal(), uni = m.sum(1) + m.sum(0) - tp;
  return torch::where(uni > 0, tp / uni.clamp_min(1), torch::zeros_like(tp));
}

double ConfusionMatrix::miou() const { return iou().mean().item<double>(); }

double ConfusionMatrix::miou_present() const {
  const torch::Tensor m = matrix_.to(torch::kFloat64);
  const torch::Tensor present = (m.sum(1) + m.sum(0)) > 0;
  if (!present.any().item<bool>()) return kNaN;
  return iou().masked_select(present).mean().item<double>();
}

double ConfusionMatrix::pixel_accuracy() const {
  const double total = matrix_.sum().item<double>();
  return total == 0 ? kNaN : matrix_.diagonal().sum().item<double>() / total;
}

torch::Tensor at_label_size(const torch::Tensor& pred, const torch::Tensor& label) {
  if (pred.dim() != 4 || label.dim() != 4 || pred.sizes().slice(2) == label.sizes().slice(2)) return pred;
  namespace F = torch::nn::functional;
  return F::interpolate(pred, F::InterpolateFuncOptions()
                                  .size(std::vector<std::int64_t>{label.size(2), label.size(3)})
                                  .mode(torch::kBilinear)
                                  .align_corners(false));
}

const torch::Tensor& require_finite_output(const torch::Tensor& pred, const std::string& what) {
  if (!pred.is_floating_point() || torch::isfinite(pred).all().item<bool>()) return pred;
  const std::int64_t bad = (~torch::isfinite(pred)).sum().item<std::int64_t>();
  throw std::runtime_error(what + " holds " + std::to_string(bad) + " NaN or infinite value(s) of " + std::to_string(pred.numel()) +
                           ": the network overflowed float32 (weights far too large, or a BatchNorm running_var below 0, in "
                           "init.from / --weights; `umrflow weights list` shows them), so nothing is scored or written from it");
}

}  // namespace umrflow::metrics
