// precision.h (engine-internal): the step plane's number formats, from
// `execution:` (autocast, channels_last).
#pragma once

#include <torch/torch.h>

namespace umrflow {

/// bf16 autocast of the forward passes on `device` (CUDA, or the CPU's own
/// autocast) while the scope lives; weights, gradients and the optimizer stay
/// fp32. Inactive when `on` is false. Not nestable.
class AutocastScope {
 public:
  AutocastScope(bool on, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

  /// Autocast off until destroyed (a backward pass between two forwards).
  class Pause {
   public:
    Pause();
    ~Pause();

   private:
    bool cuda_, cpu_;
  };

 private:
  bool on_, cuda_;
};

/// Channels-last-3D memory format for every rank-5 tensor (Conv3d weights,
/// (B, C, X, Y, Z) volumes); other tensors are returned as they are. The
/// values are unchanged, only the order of the elements in memory.
torch::Tensor channels_last(const torch::Tensor& t);
/// The same for a module's rank-5 parameters and buffers, in place.
void to_channels_last(torch::nn::Module& module);

}  // namespace umrflow
