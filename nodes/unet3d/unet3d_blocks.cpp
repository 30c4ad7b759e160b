#include "unet3d/unet3d_blocks.h"

#include "umrflow/autocast.h"
#include "umrflow/rank_sync.h"


#include <algorithm>
#include <array>
#include <variant>

namespace umrflow::model {

namespace nn = torch::nn;

namespace {
nn::Conv3d conv3(std::int64_t in, std::int64_t out, std::int64_t dilation = 1) {
  return nn::Conv3d(nn::Conv3dOptions(in, out, 3).padding(dilation).dilation(dilation).bias(false));
}
/// ReLU overwriting its input, a BatchNorm output nothing else reads (as the
/// peer's nn.ReLU(inplace=True)): one allocation and pass over memory fewer.
nn::ReLU relu_in_place() { return nn::ReLU(nn::ReLUOptions(true)); }
}  // namespace

namespace {
thread_local std::int64_t bn_groups = 1;
}  // namespace

BatchNormGroups::BatchNormGroups(std::int64_t groups) : previous_(bn_groups) {
  if (groups < 1) throw std::invalid_argument("BatchNormGroups: " + std::to_string(groups) + " groups");
  bn_groups = groups;
}
BatchNormGroups::~BatchNormGroups() { bn_groups = previous_; }
std::int64_t BatchNormGroups::current() { return bn_groups; }

namespace {

/// Sum over the ranks whose backward is the same sum of the gradients: rank
/// r's rows feed every rank's statistics, so each rank's loss reaches them.
struct RankSumFunction : torch::autograd::Function<RankSumFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& x) {
    torch::Tensor y = x.clone();
    rank_sync()->sum(y);
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list grads) {
    const RankSync* sync = rank_sync();
    if (!sync) throw std::runtime_error("SyncBatchNorm: a backward pass outside the training step that made its forward");
    torch::Tensor g = grads[0].contiguous().clone();
    sync->sum(g);
    return {g};
  }
};

/// Training-mode batch norm of xt (N, C, ...) over the rows of every rank:
/// each rank's count, mean and sum of squared deviations are gathered (a sum
/// of tensors zero outside the rank's own row) and merged as Chan et al.'s
/// parallel variance does, in the input's dtype. Returns the output and sets
/// `mean` and `unbiased` (detached) for the running statistics.
torch::Tensor synced_batch_norm(const RankSync& sync, const torch::Tensor& xt, const torch::Tensor& weight, const torch::Tensor& bias,
                                double eps, torch::Tensor& mean_out, torch::Tensor& unbiased_out) {
  // Statistics in float32 whatever the input (bf16 under autocast): Gloo sums
  // no bf16, and counts such as 26880 have no exact bf16 value.
  const torch::Tensor x = xt.scalar_type() == torch::kFloat ? xt : xt.to(torch::kFloat);
  const std::int64_t c = x.size(1);
  std::vector<std::int64_t> dims = {0}, column = {1, c};
  for (std::int64_t a = 2; a < x.dim(); ++a) {
    dims.push_back(a);
    column.push_back(1);
  }
  const double n = static_cast<double>(x.numel() / std::max<std::int64_t>(c, 1));
  const torch::Tensor local_mean = x.mean(dims);
  const torch::Tensor local_m2 = (x - local_mean.view(column)).square().sum(dims);
  const torch::Tensor own = torch::stack({torch::full_like(local_mean, n), local_mean, local_m2}).unsqueeze(0);
  const auto opts = own.options();
  const torch::Tensor padded = torch::cat({torch::zeros({sync.rank, 3, c}, opts), own, torch::zeros({sync.size - sync.rank - 1, 3, c}, opts)});
  const torch::Tensor all = RankSumFunction::apply(padded);  // (ranks, 3, C)
  const torch::Tensor counts = all.select(1, 0), means = all.select(1, 1), m2s = all.select(1, 2);
  const torch::Tensor total = counts.sum(0);
  const torch::Tensor mean = (counts * means).sum(0) / total;
  const torch::Tensor m2 = (m2s + counts * (means - mean).square()).sum(0);
  const torch::Tensor var = m2 / total;
  torch::Tensor y = (x - mean.view(column)) * torch::rsqrt(var + eps).view(column);
  if (weight.defined()) y = y * weight.view(column);
  if (bias.defined()) y = y + bias.view(column);
  mean_out = mean.detach();
  unbiased_out = (m2 / (total - 1).clamp_min(1)).detach();
  return y.to(xt.scalar_type());
}

}  // namespace

torch::Tensor batch_norm(nn::BatchNorm3dImpl& bn, const torch::Tensor& x) {
  const std::int64_t g = bn_groups;
  const RankSync* sync = bn.is_training() ? rank_sync() : nullptr;
  if (sync && !sync->sum) sync = nullptr;  // a gather-only sync (an evaluation's finish)
  if ((g == 1 && !sync) || !bn.is_training()) return bn.forward(x);
  if (x.size(0) % g != 0)
    throw std::runtime_error("batch norm over " + std::to_string(g) + " groups: " + std::to_string(x.size(0)) +
                             " rows do not split into groups of equal size");
  const std::int64_t n = x.size(0) / g, c = x.size(1);
  // Rows (g, i) -> (i, g): channel slot g*C + c of xt holds group g's channel c,
  // reduced over the same n * S elements as a call on that group alone.
  std::vector<std::int64_t> grouped = {g, n}, folded = {n, g * c};
  for (std::int64_t a = 1; a < x.dim(); ++a) grouped.push_back(x.size(a));
  for (std::int64_t a = 2; a < x.dim(); ++a) folded.push_back(x.size(a));
  const torch::Tensor xt = x.reshape(grouped).transpose(0, 1).reshape(folded);
  const auto& o = bn.options;
  const torch::Tensor weight = bn.weight.defined() ? bn.weight.repeat({g}) : torch::Tensor();
  const torch::Tensor bias = bn.bias.defined() ? bn.bias.repeat({g}) : torch::Tensor();
  const bool tracking = o.track_running_stats();
  // With momentum 1 the scratch statistics come back as exactly each group's
  // mean and unbiased variance, what BatchNorm folds into its running ones.
  torch::Tensor mean = tracking ? torch::zeros({g * c}, bn.running_mean.options()) : torch::Tensor();
  torch::Tensor var = tracking ? torch::ones({g * c}, bn.running_var.options()) : torch::Tensor();
  const torch::Tensor yt = sync ? synced_batch_norm(*sync, xt, weight, bias, o.eps(), mean, var)
                                : torch::batch_norm(xt, weight, bias, mean, var, /*training=*/true, /*momentum=*/1.0, o.eps(),
                                                    at::globalContext().userEnabledCuDNN());
  if (tracking) {
    // Updated as BatchNorm's kernel does, without bumping the version counters:
    // an earlier forward of this layer (the complete path) keeps its running
    // statistics saved for backward, which an in-place op would invalidate.
    torch::NoGradGuard no_grad;
    torch::Tensor running_mean = bn.running_mean.variable_data(), running_var = bn.running_var.variable_data();
    torch::Tensor batches = bn.num_batches_tracked.variable_data();
    for (std::int64_t k = 0; k < g; ++k) {
      batches.add_(1);
      const double f = o.momentum() ? *o.momentum() : 1.0 / batches.item<double>();
      running_mean.mul_(1 - f).add_(mean.narrow(0, k * c, c), f);
      running_var.mul_(1 - f).add_(var.narrow(0, k * c, c), f);
    }
  }
  std::vector<std::int64_t> back = {n, g};
  for (std::int64_t a = 1; a < x.dim(); ++a) back.push_back(x.size(a));
  return yt.reshape(back).transpose(0, 1).reshape(x.sizes());
}

namespace {
// libtorch 1.13 keeps a convolution's padding options in c10::variant, 2.x in
// std::variant: these unqualified calls find either's functions by
// argument-dependent lookup.
using std::get_if;
using std::holds_alternative;
template <typename T, typename Variant>
const T* alternative(const Variant& v) {
  return get_if<T>(&v);
}
template <typename T, typename Variant>
bool holds(const Variant& v) {
  return holds_alternative<T>(v);
}
}  // namespace

std::array<bool, 3> taps_outside(const nn::detail::ConvNdOptions<3>& o, c10::IntArrayRef sizes) {
  std::array<bool, 3> outside{false, false, false};
  const auto* padding = alternative<torch::ExpandingArray<3>>(o.padding());
  if (!padding || sizes.size() != 5 || !holds<torch::enumtype::kZeros>(o.padding_mode()) || o.transposed())
    return outside;
  for (std::size_t a = 0; a < 3; ++a) {
    const std::int64_t k = (*o.kernel_size())[a], d = (*o.dilation())[a];
    outside[a] = k > 1 && k % 2 == 1 && (*o.stride())[a] == 1 && (**padding)[a] == d * (k / 2) && d >= sizes[2 + a];
  }
  return outside;
}

bool takes_reference_kernel(const torch::Tensor& x, c10::IntArrayRef k, c10::IntArrayRef stride, c10::IntArrayRef dilation,
                            std::int64_t groups) {
  const auto above_one = [](c10::IntArrayRef v) { return std::any_of(v.begin(), v.end(), [](std::int64_t e) { return e > 1; }); };
  // oneDNN takes two rows unless the kernel is 1x1 in its last two axes on one thread.
  const bool onednn_for_two = above_one(stride) || above_one(dilation) || k[1] != 1 || k[2] != 1 || at::get_num_threads() > 1;
  // ... and one row only with groups, a kernel above 3 in both last axes, or a large input.
  const bool onednn_for_one = groups > 1 || (k[1] > 3 && k[2] > 3) || x.size(1) * x.size(2) * x.size(3) > 20480;
  return x.dim() == 5 && x.is_cpu() && x.scalar_type() == torch::kFloat && x.size(0) == 1 && !autocast::enabled(at::kCPU) &&
         onednn_for_two && !onednn_for_one && at::globalContext().userEnabledMkldnn() && at::hasMKLDNN();
}

torch::Tensor with_zero_row(const torch::Tensor& x) { return torch::cat({x, torch::zeros_like(x)}); }

torch::Tensor conv3d(nn::Conv3dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  const std::array<bool, 3> outside = taps_outside(o, x.sizes());
  const bool pruned = outside[0] || outside[1] || outside[2];
  torch::Tensor weight = conv.weight;
  std::vector<std::int64_t> k(o.kernel_size()->begin(), o.kernel_size()->end());
  std::vector<std::int64_t> dilation(o.dilation()->begin(), o.dilation()->end());
  const auto* explicit_padding = alternative<torch::ExpandingArray<3>>(o.padding());  // taps_outside needs one
  std::vector<std::int64_t> padding;
  if (pruned) {
    padding.assign((*explicit_padding)->begin(), (*explicit_padding)->end());
    for (std::size_t a = 0; a < 3; ++a) {
      if (!outside[a]) continue;
      weight = weight.narrow(2 + static_cast<std::int64_t>(a), k[a] / 2, 1);
      k[a] = dilation[a] = 1;
      padding[a] = 0;
    }
  }
  if (!pruned && explicit_padding && holds<torch::enumtype::kZeros>(o.padding_mode()) && !o.transposed() &&
      takes_conv3x3x3(x, conv.weight, k, *o.stride(), **explicit_padding, dilation, o.groups()))
    return conv3x3x3(x, conv.weight, conv.bias);
  const bool reference = takes_reference_kernel(x, k, *o.stride(), dilation, o.groups());
  if (!pruned && !reference) return conv.forward(x);
  const torch::Tensor input = reference ? with_zero_row(x) : x;
  torch::Tensor y = pruned ? torch::conv3d(input, weight, conv.bias, *o.stride(), padding, dilation, o.groups()) : conv.forward(input);
  return reference ? y.narrow(0, 0, 1) : y;
}

torch::Tensor run_sequential(nn::Sequential& seq, torch::Tensor x) {
  for (auto& m : *seq) {
    if (auto bn = std::dynamic_pointer_cast<nn::BatchNorm3dImpl>(m.ptr())) x = batch_norm(*bn, x);
    else if (auto conv = std::dynamic_pointer_cast<nn::Conv3dImpl>(m.ptr())) x = conv3d(*conv, x);
    else x = m.forward(x);
  }
  return x;
}

DoubleConv3DImpl::DoubleConv3DImpl(std::int64_t in, std::int64_t out) {
  double_conv = register_module("double_conv", nn::Sequential(conv3(in, out), nn::BatchNorm3d(out), relu_in_place(), conv3(out, out),
                                                              nn::BatchNorm3d(out), relu_in_place()));
}

Down3DImpl::Down3DImpl(std::int64_t in, std::int64_t out) {
  maxpool_conv = register_module("maxpool_conv", nn::Sequential(nn::MaxPool3d(2), DoubleConv3D(in, out)));
}

Up3DImpl::Up3DImpl(std::int64_t in, std::int64_t out, bool crop_larger) : crop(crop_larger) {
  conv = register_module("conv", DoubleConv3D(in, out));
}

torch::Tensor Up3DImpl::forward(const torch::Tensor& deep, const torch::Tensor& skip) {
  namespace F = torch::nn::functional;
  torch::Tensor up = F::interpolate(deep, F::InterpolateFuncOptions()
                                              .scale_factor(std::vector<double>{2, 2, 2})
                                              .mode(torch::kTrilinear)
                                              .align_corners(true));
  // F.pad order is last axis first: [z_lo, z_hi, y_lo, y_hi, x_lo, x_hi].
  std::vector<std::int64_t> pad;
  for (std::int64_t a = 4; a >= 2; --a) {
    const std::int64_t diff = skip.size(a) - up.size(a);
    if (diff < 0 && !crop)
      throw std::runtime_error("up: upsampled size " + c10::str(up.sizes()) + " exceeds the skip " + c10::str(skip.sizes()) +
                               " and centre cropping is off");
    // Python's // floors: for negative differences the low side takes the larger crop.
    const std::int64_t lo = diff >= 0 ? diff / 2 : -((-diff + 1) / 2);
    pad.push_back(lo);
    pad.push_back(diff - lo);
  }
  up = F::pad(up, F::PadFuncOptions(pad));
  return conv->forward(torch::cat({skip, up}, 1));
}

OutConv3DImpl::OutConv3DImpl(std::int64_t in, std::int64_t out) {
  conv = register_module("conv", nn::Conv3d(nn::Conv3dOptions(in, out, 1)));
}

ASPP3DImpl::ASPP3DImpl(std::int64_t in, std::int64_t out, std::vector<std::int64_t> rates) {
  convs = register_module("convs", nn::ModuleList());
  for (auto r : rates) convs->push_back(conv3(in, out, r));
  pooling = register_module("pooling", nn::Sequential(nn::AdaptiveAvgPool3d(1), nn::Conv3d(nn::Conv3dOptions(in, out, 1).bias(false))));
  final_conv = register_module("final_conv",
                               nn::Conv3d(nn::Conv3dOptions(out * static_cast<std::int64_t>(rates.size() + 1), out, 1).bias(false)));
  bn = register_module("bn", nn::BatchNorm3d(out));
}

torch::Tensor ASPP3DImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> branches;
  for (const auto& c : *convs) branches.push_back(conv3d(*c->as<nn::Conv3d>(), x));
  branches.push_back(pooling->forward(x).expand({-1, -1, x.size(2), x.size(3), x.size(4)}));
  return batch_norm(*bn, final_conv->forward(torch::cat(branches, 1))).relu_();
}

}  // namespace umrflow::model
