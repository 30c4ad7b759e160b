#include "precision.h"

#include "umrflow/autocast.h"

namespace umrflow {

AutocastScope::AutocastScope(bool on, const torch::Device& device) : on_(on), cuda_(device.is_cuda()) {
  if (!on_) return;
  const at::DeviceType type = cuda_ ? at::kCUDA : at::kCPU;
  autocast::set_dtype(type, at::kBFloat16);
  autocast::set_enabled(type, true);
}

AutocastScope::~AutocastScope() {
  if (!on_) return;
  autocast::set_enabled(cuda_ ? at::kCUDA : at::kCPU, false);
  at::autocast::clear_cache();
}

AutocastScope::Pause::Pause() : cuda_(autocast::enabled(at::kCUDA)), cpu_(autocast::enabled(at::kCPU)) {
  autocast::set_enabled(at::kCUDA, false);
  autocast::set_enabled(at::kCPU, false);
}

AutocastScope::Pause::~Pause() {
  autocast::set_enabled(at::kCUDA, cuda_);
  autocast::set_enabled(at::kCPU, cpu_);
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
