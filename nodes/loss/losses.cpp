// Segmentation, reconstruction and contrastive losses of UniMRSeg (the loss.*
// nodes in loss_nodes.cpp wrap them).
#include <torch/torch.h>

#include <cmath>

#include "loss/losses.h"

namespace umrflow::loss {

namespace F = torch::nn::functional;

torch::Tensor soft_dice(const torch::Tensor& logits, const torch::Tensor& target, const torch::Tensor& weight) {
  if (logits.sizes() != target.sizes())
    throw std::runtime_error("dice: prediction " + c10::str(logits.sizes()) + " and target " + c10::str(target.sizes()) + " differ");
  std::vector<std::int64_t> spatial;
  for (std::int64_t a = 2; a < logits.dim(); ++a) spatial.push_back(a);
  torch::Tensor p = torch::sigmoid(logits);
  torch::Tensor g = target.to(p.dtype());
  if (weight.defined()) {
    p = p * weight;
    g = g * weight;
  }
  const torch::Tensor inter = (p * g).sum(spatial);
  const torch::Tensor denom = p.sum(spatial) + g.sum(spatial);
  return (1.0 - (2.0 * inter + 1e-5) / (denom + 1e-5)).mean();
}

torch::Tensor ssim(const torch::Tensor& pred, const torch::Tensor& target, std::int64_t win, double sigma, double data_range) {
  if ((pred.dim() != 4 && pred.dim() != 5) || pred.sizes() != target.sizes())
    throw std::runtime_error("ssim: expects two (B, C, H, W) or (B, C, X, Y, Z) tensors of one shape, got " + c10::str(pred.sizes()) + " and " +
                             c10::str(target.sizes()));
  const std::int64_t dims = pred.dim() - 2;
  for (std::int64_t a = 2; a < pred.dim(); ++a)
    if (pred.size(a) < win)
      throw std::runtime_error("ssim: spatial size " + c10::str(pred.sizes()) + " is smaller than the " + std::to_string(win) + "^" +
                               std::to_string(dims) + " window");
  const auto c = pred.size(1);
  torch::Tensor g = torch::arange(win, pred.options()) - (win - 1) / 2.0;
  g = torch::exp(-(g * g) / (2 * sigma * sigma));
  g = g / g.sum();
  torch::Tensor kernel = dims == 3 ? g.view({win, 1, 1}) * g.view({1, win, 1}) * g.view({1, 1, win}) : g.view({win, 1}) * g.view({1, win});
  std::vector<std::int64_t> shape{c, 1};
  for (std::int64_t a = 0; a < dims; ++a) shape.push_back(win);
  kernel = kernel.expand(shape).contiguous();
  auto blur = [&](const torch::Tensor& x) {
    return dims == 3 ? F::conv3d(x, kernel, F::Conv3dFuncOptions().groups(c)) : F::conv2d(x, kernel, F::Conv2dFuncOptions().groups(c));
  };
  const double c1 = std::pow(0.01 * data_range, 2), c2 = std::pow(0.03 * data_range, 2);
  const torch::Tensor y = target.to(pred.dtype());
  const torch::Tensor mx = blur(pred), my = blur(y);
  const torch::Tensor sxx = blur(pred * pred) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(pred * y) - mx * my;
  const torch::Tensor map = ((2 * mx * my + c1) / (mx * mx + my * my + c1)) * ((2 * sxy + c2) / (sxx + syy + c2));
  return (1.0 - map.flatten(1).mean(1)).mean();
}

torch::Tensor nt_xent(const torch::Tensor& complete, const torch::Tensor& missing, double temperature, bool paper_variant) {
  if (complete.dim() != 2 || complete.sizes() != missing.sizes())
    throw std::runtime_error("nt_xent: expects two (B, D) tensors of one shape");
  const auto b = complete.size(0);
  const torch::Tensor rows = torch::stack({complete, missing}, 1).reshape({2 * b, complete.size(1)});  // A, A', B, B', ...
  const torch::Tensor sim = torch::exp(torch::matmul(rows, rows.t()) / temperature);
  const torch::Tensor idx = torch::arange(2 * b, torch::kLong);
  const torch::Tensor partner = idx + 1 - 2 * (idx % 2);
  const torch::Tensor sample_of = torch::div(idx, 2, "floor");  // integer division (plain / is true division)
  const torch::Tensor same_sample = sample_of.view({-1, 1}) == sample_of.view({1, -1});
  const torch::Tensor self = torch::eye(2 * b, torch::kBool);
  const torch::Tensor in_denominator = paper_variant ? ~self : ~same_sample;
  const torch::Tensor pos = sim.gather(1, partner.view({-1, 1})).view({-1});
  const torch::Tensor denom = (sim * in_denominator.to(sim.dtype())).sum(1);
  return (-torch::log(pos / denom)).mean();
}

torch::Tensor structure_loss(const torch::Tensor& logits, const torch::Tensor& mask, std::int64_t window, double boundary_weight) {
  if (logits.dim() != 4 || logits.size(1) != 1 || logits.sizes() != mask.sizes())
    throw std::runtime_error("structure loss: expects prediction and mask of one shape (B, 1, H, W), got " + c10::str(logits.sizes()) +
                             " and " + c10::str(mask.sizes()));
  if (window < 1 || window % 2 == 0) throw std::runtime_error("structure loss: the window must be odd, got " + std::to_string(window));
  const torch::Tensor m = mask.to(logits.dtype());
  const torch::Tensor local = F::avg_pool2d(m, F::AvgPool2dFuncOptions(window).stride(1).padding(window / 2).count_include_pad(true));
  const torch::Tensor w = 1 + boundary_weight * (local - m).abs();
  const torch::Tensor bce = F::binary_cross_entropy_with_logits(logits, m, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone));
  const torch::Tensor wbce = (w * bce).sum({2, 3}) / w.sum({2, 3});
  const torch::Tensor p = torch::sigmoid(logits);
  const torch::Tensor inter = (w * p * m).sum({2, 3}), both = (w * (p + m)).sum({2, 3});
  const torch::Tensor wiou = 1 - (inter + 1) / (both - inter + 1);
  return (wbce + wiou).mean();
}

}  // namespace umrflow::loss
