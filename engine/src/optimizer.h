// optimizer.h (engine-internal): a run's optimizer (`train.optimizer`) and
// how the step clears and applies gradients.
//
// MultiTensorAdamW, the `adamw` optimizer. torch::optim::AdamW updates one
// parameter at a time, about nine kernels per parameter tensor: a step of the
// stage-3 network (154 tensors) launches some 1400 small kernels on a GPU. MultiTensorAdamW performs the same update
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

#include <memory>
#include <vector>

#include <torch/optim.h>

#include "umrflow/graph.h"

namespace umrflow {

class MultiTensorAdamW final : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

/// The optimizer `t` names (sgd, adam, adamw) over `params`; an error when
/// there is none to train.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainSettings& t, std::vector<torch::Tensor> params);

/// Sets every gradient to none instead of zeroing it: no pass over the
/// gradients per step, and the first backward hands its gradient over instead
/// of adding it to zeros (the same values).
void clear_gradients(torch::optim::Optimizer& optimizer);

/// The optimizer's step, after giving zeros to the parameters no backward
/// reached: they are stepped (weight decay, moments) as after zero_grad(), so
/// clear_gradients + step_optimizer update as zero_grad + step do.
void step_optimizer(torch::optim::Optimizer& optimizer);

}  // namespace umrflow
