#include "image2d/convnext.h"

#include <stdexcept>

namespace umrflow::image2d {

namespace nn = torch::nn;

namespace {

/// torchvision's Permute module: a fixed reordering of the axes.
struct PermuteImpl : nn::Module {
  explicit PermuteImpl(std::vector<std::int64_t> order) : order(std::move(order)) {}
  torch::Tensor forward(const torch::Tensor& x) { return x.permute(order); }
  std::vector<std::int64_t> order;
};
TORCH_MODULE(Permute);

/// torchvision's trunc_normal_(std=0.02): its bounds are absolute, +-2, so at
/// sd 0.02 nothing is ever cut; values beyond them would be redrawn.
void trunc_normal_(torch::Tensor& t) {
  torch::NoGradGuard no_grad;
  t.normal_(0, 0.02);
  for (torch::Tensor out = t.abs() > 2.0; out.any().item<bool>(); out = t.abs() > 2.0)
    t.masked_scatter_(out, torch::empty({out.sum().item<std::int64_t>()}, t.options()).normal_(0, 0.02));
}

}  // namespace

LayerNorm2dImpl::LayerNorm2dImpl(std::int64_t channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor LayerNorm2dImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x.permute({0, 2, 3, 1}), {weight.size(0)}, weight, bias, eps).permute({0, 3, 1, 2});
}

CNBlockImpl::CNBlockImpl(std::int64_t dim, double scale) {
  block = register_module("block", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(dim, dim, 7).padding(3).groups(dim)), Permute(std::vector<std::int64_t>{0, 2, 3, 1}),
                                                  nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)), nn::Linear(dim, 4 * dim),
                                                  nn::GELU(), nn::Linear(4 * dim, dim), Permute(std::vector<std::int64_t>{0, 3, 1, 2})));
  layer_scale = register_parameter("layer_scale", torch::full({dim, 1, 1}, scale));
}

torch::Tensor CNBlockImpl::forward(const torch::Tensor& x) { return layer_scale * block->forward(x) + x; }

ConvNeXtImpl::ConvNeXtImpl(std::int64_t in_channels_, std::vector<std::int64_t> depths, std::vector<std::int64_t> widths_, std::int64_t classes)
    : in_channels(in_channels_), widths(widths_) {
  if (depths.size() != 4 || widths.size() != 4) throw std::invalid_argument("ConvNeXt: four depths and four widths");
  stages = nn::ModuleList();
  stages->push_back(nn::ModuleList(nn::Conv2d(nn::Conv2dOptions(in_channels, widths[0], 4).stride(4)), LayerNorm2d(widths[0])));
  for (std::size_t s = 0; s < 4; ++s) {
    nn::ModuleList stage;
    for (std::int64_t k = 0; k < depths[s]; ++k) stage->push_back(CNBlock(widths[s]));
    stages->push_back(stage);
    if (s + 1 < 4) stages->push_back(nn::ModuleList(LayerNorm2d(widths[s]), nn::Conv2d(nn::Conv2dOptions(widths[s], widths[s + 1], 2).stride(2))));
  }
  register_module("features", stages);
  if (classes > 0)
    classifier = register_module("classifier", nn::Sequential(LayerNorm2d(widths[3]), nn::Flatten(), nn::Linear(widths[3], classes)));
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::Conv2d>()) {
      trunc_normal_(conv->weight);
      torch::NoGradGuard no_grad;
      conv->bias.zero_();
    } else if (auto* linear = m->as<nn::Linear>()) {
      trunc_normal_(linear->weight);
      torch::NoGradGuard no_grad;
      linear->bias.zero_();
    }
  }
}

ConvNeXtFeatures ConvNeXtImpl::features(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != in_channels)
    throw std::invalid_argument("ConvNeXt: expected an image batch (B, " + std::to_string(in_channels) + ", H, W), got " + c10::str(x.sizes()));
  ConvNeXtFeatures f;
  torch::Tensor h = x;
  for (int i = 0; i < 4; ++i) h = f[static_cast<std::size_t>(i)] = level(i, h);
  return f;
}

torch::Tensor ConvNeXtImpl::level(int i, const torch::Tensor& x) {
  if (i < 0 || i > 3) throw std::out_of_range("ConvNeXt has levels 0..3, not " + std::to_string(i));
  torch::Tensor h = x;
  for (std::size_t m = 2 * static_cast<std::size_t>(i); m < 2 * static_cast<std::size_t>(i) + 2; ++m) {
    for (const auto& layer : *stages[m]->as<nn::ModuleList>()) {
      if (auto* conv = layer->as<nn::Conv2d>()) h = conv->forward(h);
      else if (auto* norm = layer->as<LayerNorm2d>()) h = norm->forward(h);
      else h = layer->as<CNBlock>()->forward(h);
    }
  }
  return h;
}

std::vector<std::int64_t> ConvNeXtImpl::level_channels() const { return widths; }

torch::Tensor ConvNeXtImpl::forward(const torch::Tensor& x) {
  if (!classifier) throw std::logic_error("ConvNeXt::forward needs classes > 0");
  return classifier->forward(features(x)[3].mean({2, 3}, /*keepdim=*/true));
}

}  // namespace umrflow::image2d
