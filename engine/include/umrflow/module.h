// umrflow/module.h: nodes that own weights.
//
// A ModuleNode wraps a torch::nn::Module. It is declared once under `modules:`
// and called from the step plane by `{type: call, module: ID, in: ...}`, as
// many times as the graph needs: every call uses the same weights. The engine
// collects the parameters of all modules that are not `frozen` into the
// optimizer, saves them in checkpoints under `ID.<parameter name>`, and moves
// them to the run's device.
#pragma once

#include <functional>
#include <string>

#include <torch/nn/module.h>

#include "umrflow/node.h"

namespace umrflow {

class ModuleNode : public Node {
 public:
  /// The wrapped module; its named parameters and buffers are the weights.
  virtual torch::nn::Module& module() = 0;
  /// One call. `inputs` follow the module spec's ports.
  virtual Packet forward(const std::vector<Packet>& inputs, Context& ctx) = 0;
  /// Looks up another module of the same graph by id; nullptr when there is none.
  using ModuleLookup = std::function<ModuleNode*(const std::string& id)>;
  /// Called once, after every module of the graph exists and before any weight
  /// is loaded: a module that uses another one (an adapter calling an
  /// encoder's stages) finds it here, and throws std::runtime_error with a
  /// clear message when it is missing or of the wrong type.
  virtual void link(const ModuleLookup& lookup) { (void)lookup; }
};

}  // namespace umrflow
