// instance.h (engine-internal): a graph's nodes, created and wired.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "deferred_checks.h"
#include "umrflow/graph.h"
#include "umrflow/module.h"
#include "umrflow/registry.h"
#include "umrflow/scheduler.h"

namespace umrflow {

class Instance {
 public:
  /// `defer_checks`: step nodes' check_on_host() calls are kept and read by
  /// read_checks() (umrflow/step_checks.h); by default on every device but
  /// the CPU, where a read costs nothing.
  Instance(const Graph& graph, torch::Device device);
  Instance(const Graph& graph, torch::Device device, bool defer_checks);

  /// The data plane for one epoch's run.
  DataPlane data_plane(bool training, std::int64_t prefetch) const;
  std::int64_t samples_per_epoch() const { return source_->size(); }

  /// Runs every step node on `batch` in topological order; returns each node's output.
  /// Failures are thrown as NodeError naming the step node and the batch's samples.
  std::map<std::string, Packet> run_step(const Packet& batch, std::int64_t epoch, std::int64_t batch_index,
                                         bool training) const;

  /// train.accumulate: what run_step computes, with one `backward` call per
  /// group of rows instead of one loss for the batch. The step nodes that do
  /// not depend on the split tensors run once; the objective with its
  /// dependent terms set to zero is handed to `backward` first (when it has a
  /// gradient), then for each group g in label order the dependent nodes run
  /// on that group's rows with the other nodes' outputs detached, and the
  /// objective with its unsplit terms set to zero, times rows_g / rows, goes
  /// to `backward`. Returns the unsplit nodes' outputs and, for each dependent
  /// node, its scalars as the row-weighted sum over groups (the objective's
  /// `loss` is the batch's loss); a dependent node's other outputs are not
  /// kept. A gradient that reaches an unsplit output through a dependent node
  /// is an error naming both (a loss that should detach its target).
  using Backward = std::function<void(const torch::Tensor& loss, const std::string& part)>;
  std::map<std::string, Packet> run_step_grouped(const Packet& batch, std::int64_t epoch, std::int64_t batch_index,
                                                 const Backward& backward) const;

  /// Reads the checks kept since the last read in one transfer; throws a
  /// NodeError for the first that failed. Nothing to do without deferral.
  void read_checks() const { checks_.read(); }
  /// Forgets the checks kept unread (a stopped epoch's).
  void clear_checks() const { checks_.clear(); }

  /// Parameters of the modules that are not frozen.
  std::vector<torch::Tensor> trainable_parameters() const;
  /// Every module's buffers (BatchNorm running statistics), in weights() order.
  std::vector<torch::Tensor> buffers() const;
  /// Every module parameter and buffer as `module.name` -> tensor.
  std::vector<std::pair<std::string, torch::Tensor>> weights() const;
  /// Applies `init:` of each module (include/exclude globs) from its checkpoint.
  void initialise_modules() const;
  void set_training(bool training) const;
  /// What a run checkpoint holds besides the weights.
  struct CheckpointState {
    std::int64_t epoch = 0;               // whole epochs done
    std::optional<double> best;           // best validation metric so far, when validating
  };
  /// Reads a run checkpoint: every module tensor, the optimizer state when
  /// given, and its CheckpointState. A graph hash that differs from
  /// `graph_hash` is reported through `warn`, not refused.
  CheckpointState load_checkpoint(const std::string& path, torch::optim::Optimizer* optimizer, std::int64_t graph_hash,
                                  const std::function<void(const std::string&)>& warn) const;
  /// Calls every step node's finish(run_dir); returns their summary figures as `ID.key`.
  std::map<std::string, double> finish(const std::string& run_dir) const;

 private:
  const Graph& graph_;
  torch::Device device_;
  std::unique_ptr<Node> source_owner_;
  SourceNode* source_ = nullptr;
  std::vector<std::unique_ptr<Node>> transforms_;
  std::map<std::string, std::unique_ptr<Node>> modules_;
  std::vector<std::unique_ptr<Node>> steps_;  // parallel to graph_.step; null for `call`
  std::vector<bool> dependent_;                // parallel to graph_.step: train.accumulate splits it
  bool defer_checks_ = false;
  mutable DeferredChecks checks_;

  using Lookup = std::function<const Packet&(const std::string& node)>;
  /// Runs step node `i` on the packets `lookup` gives for its inputs.
  Packet run_node(std::size_t i, const Lookup& lookup, const Packet& batch, std::int64_t epoch, std::int64_t batch_index,
                  bool training) const;
};

/// A call node's module forward with its `grad`, `eval` and sliding-window
/// settings applied (the window slides over the last axes of every input
/// tensor of rank >= 2 + window rank; outputs of window size are blended).
/// One module, or a chain of modules, as a `call` runs it.
struct ChainLink {
  ModuleNode* module;
  std::size_t ports;  // the module's input port count; a link gets the previous output on its first
};
Packet call_module(ModuleNode& module, const std::vector<ChainLink>& then, const Params& call, const std::vector<Packet>& inputs,
                   Context& ctx);

/// Writes named tensors (and scalar fields) as a torch archive at `path`, atomically,
/// and records its SHA-256 in the folder's checksums.sha256 (digest.h).
void save_checkpoint(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     torch::optim::Optimizer* optimizer);

}  // namespace umrflow
