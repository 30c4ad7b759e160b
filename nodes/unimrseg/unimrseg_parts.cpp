#include "unimrseg/unimrseg_parts.h"

#include <algorithm>
#include <stdexcept>

namespace umrflow::model {

namespace nn = torch::nn;

namespace {
/// (MaxPool3d(2) when pooling) -> Conv3d k3 p1 without bias -> BatchNorm3d -> ReLU.
nn::Sequential cbr(std::int64_t in, std::int64_t out, bool pool) {
  nn::Sequential s;
  if (pool) s->push_back(nn::MaxPool3d(2));
  s->push_back(nn::Conv3d(nn::Conv3dOptions(in, out, 3).padding(1).bias(false)));
  s->push_back(nn::BatchNorm3d(out));
  s->push_back(nn::ReLU(nn::ReLUOptions(true)));  // in place: overwrites the BatchNorm output only it reads
  return s;
}
void check_widths(const std::vector<std::int64_t>& w) {
  if (w.size() != 4) throw std::invalid_argument("widths: expected 4 encoder widths, got " + std::to_string(w.size()));
}
}  // namespace

EvalScope::EvalScope(ModuleList modules) : modules_(std::move(modules)) {
  for (auto& m : modules_) {
    was_.push_back(m->is_training());
    m->eval();
  }
}

EvalScope::~EvalScope() {
  for (std::size_t i = 0; i < modules_.size(); ++i) modules_[i]->train(was_[i]);
}

std::vector<std::pair<std::int64_t, std::int64_t>> group_rows(const torch::Tensor& group, std::int64_t rows) {
  const torch::Tensor g = group.to(torch::kCPU).to(torch::kLong);
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < g.numel(); ++i)
    if (g[i].item<std::int64_t>() > 0) labels.push_back(g[i].item<std::int64_t>());
  if (labels.empty() || rows % static_cast<std::int64_t>(labels.size()) != 0)
    throw std::runtime_error(std::to_string(rows) + " rows do not split into " + std::to_string(labels.size()) +
                             " incomplete subsets of equal size (is `groups` from the same modality.subsets node?)");
  const std::int64_t per = rows / static_cast<std::int64_t>(labels.size());
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (std::size_t s = 0; s < labels.size();) {
    std::size_t e = s;
    while (e < labels.size() && labels[e] == labels[s]) ++e;
    out.emplace_back(static_cast<std::int64_t>(s) * per, static_cast<std::int64_t>(e - s) * per);
    s = e;
  }
  return out;
}

std::int64_t equal_groups(const std::vector<std::pair<std::int64_t, std::int64_t>>& ranges) {
  for (std::size_t k = 0; k < ranges.size(); ++k)
    if (ranges[k].second != ranges[0].second || ranges[k].first != static_cast<std::int64_t>(k) * ranges[0].second)
      throw std::runtime_error("group_bn: batched needs groups of equal size (got a group of " + std::to_string(ranges[k].second) +
                               " rows beside one of " + std::to_string(ranges[0].second) +
                               "); use group_bn: loop, or a group_size that divides the incomplete subsets");
  return static_cast<std::int64_t>(ranges.size());
}

namespace {

/// Row indices of the complete subsets and of the others.
struct RowSplit {
  std::vector<std::int64_t> complete, incomplete;
};

RowSplit split_complete_rows(const torch::Tensor& present, std::int64_t rows, std::int64_t modalities) {
  const torch::Tensor mask = present.to(torch::kCPU).to(torch::kLong);
  if (mask.dim() != 2 || mask.size(1) != modalities || mask.size(0) == 0 || rows % mask.size(0) != 0)
    throw std::runtime_error("`present` " + c10::str(mask.sizes()) + " does not describe " + std::to_string(rows) + " rows of " +
                             std::to_string(modalities) + " modalities (expected (S, " + std::to_string(modalities) +
                             ") subset masks, S dividing the batch)");
  const std::int64_t per = rows / mask.size(0);
  RowSplit split;
  for (std::int64_t s = 0; s < mask.size(0); ++s)
    for (std::int64_t r = 0; r < per; ++r) (mask[s].all().item<bool>() ? split.complete : split.incomplete).push_back(s * per + r);
  return split;
}

/// Copies `part` into rows `idx` of `into` (a batch of `total` rows), which is
/// allocated zero-filled, shaped like `part`, on first use.
void place_rows(torch::Tensor& into, const torch::Tensor& part, const torch::Tensor& idx, std::int64_t total) {
  if (!into.defined()) {
    auto shape = part.sizes().vec();
    shape[0] = total;
    into = torch::zeros(shape, part.options());
  }
  into.index_copy_(0, idx, part);
}

}  // namespace

std::vector<torch::Tensor> route_by_subset(const torch::Tensor& x, const torch::Tensor& present, std::int64_t modalities, const RowsFn& complete,
                                           const RowsFn& incomplete) {
  const RowSplit split = split_complete_rows(present, x.size(0), modalities);
  if (!incomplete) return complete(x);
  std::vector<torch::Tensor> out;
  auto run = [&](const std::vector<std::int64_t>& rows, const RowsFn& fn) {
    if (rows.empty()) return;
    const torch::Tensor idx = torch::tensor(rows, torch::kLong).to(x.device());
    const std::vector<torch::Tensor> part = fn(x.index_select(0, idx));
    if (out.empty()) out.resize(part.size());
    if (part.size() != out.size()) throw std::logic_error("route_by_subset: the two paths return different numbers of tensors");
    for (std::size_t i = 0; i < part.size(); ++i) place_rows(out[i], part[i], idx, x.size(0));
  };
  run(split.complete, complete);
  run(split.incomplete, incomplete);
  return out;
}

const torch::Tensor& checked_volume(const torch::Tensor& x, std::int64_t channels) {
  if (x.dim() != 5 || x.size(1) != channels)
    throw std::runtime_error("expects `image` (B, " + std::to_string(channels) + ", X, Y, Z), got " + c10::str(x.sizes()));
  for (std::int64_t a = 2; a < 5; ++a)
    if (x.size(a) % 8 != 0)
      throw std::runtime_error("spatial size " + c10::str(x.sizes()) +
                               " is not a multiple of 8 (three 2x poolings); crop or pad to a multiple of 8");
  return x;
}

std::array<std::int64_t, 5> level_widths(const std::vector<std::int64_t>& w) {
  check_widths(w);
  return {w[0], w[1], w[2], w[3], w[3]};
}

UNet3DEncoderImpl::UNet3DEncoderImpl(std::int64_t in_channels, std::vector<std::int64_t> w, std::vector<std::int64_t> rates) {
  check_widths(w);
  inc = register_module("inc", DoubleConv3D(in_channels, w[0]));
  down1 = register_module("down1", Down3D(w[0], w[1]));
  down2 = register_module("down2", Down3D(w[1], w[2]));
  down3 = register_module("down3", Down3D(w[2], w[3]));
  aspp = register_module("aspp", ASPP3D(w[3], w[3], rates));
}

ModuleList UNet3DEncoderImpl::stages() const { return {inc.ptr(), down1.ptr(), down2.ptr(), down3.ptr(), aspp.ptr()}; }

torch::Tensor UNet3DEncoderImpl::stage(int i, const torch::Tensor& x) {
  switch (i) {
    case 0: return inc->forward(x);
    case 1: return down1->forward(x);
    case 2: return down2->forward(x);
    case 3: return down3->forward(x);
    default: return aspp->forward(x);
  }
}

Levels UNet3DEncoderImpl::encode(const torch::Tensor& x) {
  Levels f;
  torch::Tensor prev = x;
  for (int i = 0; i < 5; ++i) prev = f[i] = stage(i, prev);
  return f;
}

Levels UNet3DEncoderImpl::encode_plain(const torch::Tensor& x, bool frozen, bool bn_update) {
  if (!frozen) return encode(x);
  torch::NoGradGuard no_grad;
  if (bn_update) return encode(x);
  EvalScope eval(stages());
  return encode(x);
}

UNet3DDecoderImpl::UNet3DDecoderImpl(std::vector<std::int64_t> w, std::int64_t out_channels, bool crop, bool relu)
    : centre_crop(crop), relu_head(relu) {
  check_widths(w);
  up1 = register_module("up1", Up3D(2 * w[3], w[2]));
  up2 = register_module("up2", Up3D(2 * w[2], w[1]));
  up3 = register_module("up3", Up3D(2 * w[1], w[0]));
  up4 = register_module("up4", Up3D(2 * w[0], w[0]));
  outc = register_module("outc", OutConv3D(w[0], out_channels));
}

ModuleList UNet3DDecoderImpl::stages() const { return {up1.ptr(), up2.ptr(), up3.ptr(), up4.ptr(), outc.ptr()}; }

torch::Tensor UNet3DDecoderImpl::decode(const Levels& f) {
  // Without the released crop, up1 concatenates at 1/8 resolution directly
  // (the ASPP keeps the resolution, so upsampling and cropping cancel out).
  torch::Tensor y = centre_crop ? up1->forward(f[4], f[3]) : up1->conv->forward(torch::cat({f[3], f[4]}, 1));
  y = up2->forward(y, f[2]);
  y = up3->forward(y, f[1]);
  y = up4->forward(y, f[0]);
  y = outc->forward(y);
  return relu_head ? torch::relu(y) : y;
}

UniMRSegAdapterImpl::UniMRSegAdapterImpl(UniMRSegAdapterOptions o) : options(std::move(o)) {
  if (options.heads.size() != 5) throw std::invalid_argument("heads: expected 5 head counts (one per level)");
  const auto width = level_widths(options.widths);
  for (int i = 0; i < 5; ++i) {
    const std::int64_t in = i == 0 ? options.in_channels : width[i - 1];
    adaptor_conv[i] = register_module("adaptor_conv_" + std::to_string(i + 1), cbr(in, width[i], i >= 1 && i <= 3));
    fuse[i] = register_module("fuse_" + std::to_string(i + 1), cbr(width[i], width[i], false));
    if (options.fuse_gamma != 1.0) {
      torch::NoGradGuard no_grad;
      fuse[i][1]->as<nn::BatchNorm3d>()->weight.fill_(options.fuse_gamma);
    }
  }
  if (options.kind != AdapterKind::reverse_attention_swin && options.kind != AdapterKind::swin) return;
  for (int i = 0; i < 5; ++i)
    adaptor_transformer[i] = register_module("adaptor_transformer_" + std::to_string(i + 1),
                                             SwinLayer3D(width[i], options.heads[i], options.window, options.mlp_ratio, false));
}

Levels UniMRSegAdapterImpl::adapt(const torch::Tensor& x, UNet3DEncoderImpl& encoder) {
  const auto stages = encoder.stages();
  Levels out;
  torch::Tensor prev = x;
  for (int i = 0; i < 5; ++i) {
    torch::Tensor fcp;
    {
      // The released adapter runs each frozen encoder stage in eval mode without autograd.
      torch::NoGradGuard no_grad;
      EvalScope eval({stages[i]});
      fcp = encoder.stage(i, prev);
    }
    if (std::find(options.levels.begin(), options.levels.end(), i + 1) == options.levels.end()) {
      prev = out[i] = fcp;
      continue;
    }
    const torch::Tensor h = run_sequential(fuse[i], fcp + run_sequential(adaptor_conv[i], prev));
    switch (options.kind) {
      case AdapterKind::reverse_attention_swin:
        out[i] = fcp + (1.0 - torch::sigmoid(adaptor_transformer[i]->forward(h).mean(4, true).mean(1, true))) * h;
        break;
      case AdapterKind::reverse_attention: out[i] = fcp + (1.0 - torch::sigmoid(h.mean(4, true).mean(1, true))) * h; break;
      case AdapterKind::swin: out[i] = fcp + adaptor_transformer[i]->forward(h); break;
      case AdapterKind::conv: out[i] = fcp + h; break;
    }
    prev = out[i];
  }
  return out;
}

}  // namespace umrflow::model
