#include "precision.h"

#include <ATen/autocast_mode.h>

namespace umrflow {

AutocastScope::AutocastScope(bool on, const torch::Device& device) : on_(on), cuda_(device.is_cuda()) {
  if (!on_) return;
  if (cuda_) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
}

AutocastScope::~AutocastScope() {
  if (!on_) return;
  if (cuda_) at::autocast::set_enabled(false);
  else at::autocast::set_cpu_enabled(false);
  at::autocast::clear_cache();
}

AutocastScope::Pause::Pause() : cuda_(at::autocast::is_enabled()), cpu_(at::autocast::is_cpu_enabled()) {
  at::autocast::set_enabled(false);
  at::autocast::set_cpu_enabled(false);
}

AutocastScope::Pause::~Pause() {
  at::autocast::set_enabled(cuda_);
  at::autocast::set_cpu_enabled(cpu_);
}

torch::Tensor channels_last(const torch::Tensor& t) {
  return t.defined() && t.dim() == 5 ? t.contiguous(at::MemoryFormat::ChannelsLast3d) : t;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 5) p.set_data(channels_last(p));
  for (auto& b : module.buffers())
    if (b.dim() == 5) b.set_data(channels_last(b));
}

}  // namespace umrflow
