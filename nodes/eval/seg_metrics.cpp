#include "eval/seg_metrics.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace umrflow::metrics {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// One pass of the exact squared distance transform (lower envelope of
/// parabolas) along a line of n values f, spacing w: d[i] = min_j f[j] + (w(i-j))^2.
void envelope(const double* f, double* d, std::int64_t n, double w, std::vector<std::int64_t>& v, std::vector<double>& z) {
  v.assign(n, 0);
  z.assign(n + 1, 0);
  std::int64_t k = -1;
  for (std::int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    while (k >= 0) {
      const double p = static_cast<double>(v[k]);
      const double s = ((f[q] + (w * q) * (w * q)) - (f[v[k]] + (w * p) * (w * p))) / (2 * w * w * (q - p));
      if (s <= z[k]) {
        --k;
        continue;
      }
      ++k;
      v[k] = q;
      z[k] = s;
      z[k + 1] = kInf;
      break;
    }
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
    }
  }
  if (k < 0) {
    for (std::int64_t q = 0; q < n; ++q) d[q] = kInf;
    return;
  }
  std::int64_t j = 0;
  for (std::int64_t q = 0; q < n; ++q) {
    while (z[j + 1] < q) ++j;
    const double dq = w * (q - v[j]);
    d[q] = dq * dq + f[v[j]];
  }
}

torch::Tensor surface(const torch::Tensor& m) {
  // Erosion with 6-neighbours, outside the volume counting as background.
  torch::Tensor p = torch::constant_pad_nd(m.to(torch::kBool), {1, 1, 1, 1, 1, 1}, 0);
  torch::Tensor inner = m.to(torch::kBool).clone();
  const std::int64_t X = m.size(0), Y = m.size(1), Z = m.size(2);
  for (int a = 0; a < 3; ++a)
    for (int o : {0, 2}) {
      std::vector<std::int64_t> start{1, 1, 1};
      start[a] = o;
      inner &= p.narrow(0, start[0], X).narrow(1, start[1], Y).narrow(2, start[2], Z);
    }
  return m.to(torch::kBool) & ~inner;
}

double percentile95(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const double pos = 0.95 * static_cast<double>(v.size() - 1);
  const std::size_t lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}
}  // namespace

double dice_monai(const torch::Tensor& pred, const torch::Tensor& gt) {
  const double g = gt.to(torch::kBool).sum().item<double>();
  if (g == 0) return kNaN;
  const double p = pred.to(torch::kBool).sum().item<double>();
  const double i = (pred.to(torch::kBool) & gt.to(torch::kBool)).sum().item<double>();
  return 2 * i / (p + g);
}

double dice_rfnet(const torch::Tensor& pred, const torch::Tensor& gt) {
  const double g = gt.to(torch::kBool).sum().item<double>();
  const double p = pred.to(torch::kBool).sum().item<double>();
  const double i = (pred.to(torch::kBool) & gt.to(torch::kBool)).sum().item<double>();
  return (2 * i + 1e-8) / (p + g + 1e-8);
}

torch::Tensor distance_to(const torch::Tensor& mask, const std::vector<double>& spacing) {
  torch::Tensor f = torch::where(mask.to(torch::kBool), torch::zeros({}, torch::kFloat64), torch::full({}, kInf, torch::kFloat64))
                        .contiguous();
  std::vector<std::int64_t> v;
  std::vector<double> z;
  for (int axis = 0; axis < 3; ++axis) {
    torch::Tensor moved = f.movedim(axis, 2).contiguous();
    const std::int64_t n = moved.size(2), lines = moved.numel() / n;
    std::vector<double> line(n);
    double* data = moved.data_ptr<double>();
    for (std::int64_t l = 0; l < lines; ++l) {
      std::copy(data + l * n, data + (l + 1) * n, line.begin());
      envelope(line.data(), data + l * n, n, spacing[axis], v, z);
    }
    f = moved.movedim(2, axis).contiguous();
  }
  return f.sqrt();
}

double hd95(const torch::Tensor& pred, const torch::Tensor& gt, const std::vector<double>& spacing) {
  const bool g = gt.to(torch::kBool).any().item<bool>(), p = pred.to(torch::kBool).any().item<bool>();
  if (!g) return kNaN;
  if (!p) {
    double d = 0;
    for (int a = 0; a < 3; ++a) d += std::pow(spacing[a] * static_cast<double>(gt.size(a)), 2);
    return std::sqrt(d);
  }
  const torch::Tensor sp = surface(pred), sg = surface(gt);
  auto directed = [&](const torch::Tensor& from, const torch::Tensor& to) {
    const torch::Tensor d = distance_to(to, spacing).masked_select(from).contiguous();
    return percentile95(std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel()));
  };
  return std::max(directed(sp, sg), directed(sg, sp));
}

}  // namespace umrflow::metrics
