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

/// The optimizer `t` names (sgd, adam, adamw) over `params`, each tensor
/// once however many modules share it; an error when there is none to train.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainSettings& t, std::vector<torch::Tensor> params);

/// zero_grad() and step() without a pass over every gradient per step.
/// clear() sets the gradients to none, so that the first backward hands its
/// gradient over instead of adding it to zeros; step() first gives zeros back
/// to the parameters that had a gradient before clear() and that no backward
/// reached, then steps. The update equals libtorch 1.x's zero_grad() + step()
/// value for value (a zero may differ in sign: g against 0 + g). A parameter
/// that never had a gradient stays untouched (no weight decay, no state), one
/// that had keeps being stepped with zeros. After a resume (no gradient yet)
/// "had one" is read from the optimizer state, which plain SGD does not keep:
/// there a parameter the first resumed backward misses is not stepped, as
/// with libtorch's zero_grad after a restart.
class StepGradients {
 public:
  explicit StepGradients(torch::optim::Optimizer& optimizer) : optimizer_(optimizer) {}
  void clear();
  void step();

 private:
  torch::optim::Optimizer& optimizer_;
  std::vector<bool> had_;  // per parameter, in param_groups order: a gradient before clear()
  bool cleared_ = false;
};

}  // namespace umrflow
