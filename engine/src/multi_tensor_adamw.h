// multi_tensor_adamw.h (engine-internal): the `adamw` optimizer of a run.
//
// torch::optim::AdamW updates one parameter at a time: about nine kernels per
// parameter tensor, so a step of the stage-3 network (154 tensors) launches
// some 1400 small kernels on a GPU. MultiTensorAdamW performs the same update
// with one multi-tensor (`_foreach_*`) call per operation for all parameters
// that share a step count, device and dtype; on CUDA each call launches a few
// kernels over many tensors at once.
//
// Contract: the same state (AdamWParamState under the same keys), so the same
// checkpoints in both directions, and the same arithmetic in the same order
// per element. On the CPU, where ATen runs each multi-tensor call as the
// per-tensor loop, it is bit-identical to torch::optim::AdamW (tested); on
// CUDA the fused kernels may round a division differently in the last bit.
// amsgrad falls back to torch::optim::AdamW::step.
#pragma once

#include <torch/optim/adamw.h>

namespace umrflow {

class MultiTensorAdamW final : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace umrflow
