// umrflow/node_spec.h: what a node type declares about itself.
//
// A NodeSpec is the single declaration of a node type: its registered name, what
// kind of node it is, its parameters (see params.h), its input ports with the
// packet keys and tensor ranks each needs, and the keys it provides. The graph
// validator checks every edge against these declarations before any data is
// read; `umrflow nodes` and docs/nodes.md are generated from them.
//
// Kinds and where they live in a graph file:
//   source  `data:`    produces sample `index` of an epoch (exactly one per graph)
//   sample  `data:`    transforms one sample in place; runs in parallel with itself
//   step    `step:`    runs once per batch, in topological order, on the device
//   module  `modules:` owns weights; called from `step:` by `{type: call, module: ID}`
//   batch   `data:`    the engine's `batch` node, ending the data plane
//   call    `step:`    the engine's `call` node; its ports and outputs are the
//                      called module's, resolved when the graph is built
//
// Ranks are per sample on the data plane; the `batch` node adds the batch axis,
// so a rank-4 `image` (C, X, Y, Z) becomes rank 5 on the step plane.
//
// This header has no dependency on torch: factories return Node, which is
// defined in node.h.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "umrflow/params.h"

namespace umrflow {

class Node;

enum class NodeKind { source, sample, step, module, batch, call };
const char* node_kind_name(NodeKind kind);

/// A named tensor in a packet. rank -1 means "any rank".
struct KeySpec {
  std::string key;
  int rank = -1;
  std::string description;
};

/// An input of a node. `needs` lists the keys the node reads from what arrives
/// there. When the graph binds a single key (`in: batch.label`), that tensor is
/// delivered under the port's first needed key. A variadic port (only the last
/// port may be) takes one or more inputs.
struct PortSpec {
  std::string name;
  std::vector<KeySpec> needs;
  std::string description;
  bool optional = false;
  bool variadic = false;
};

using NodeFactory = std::function<std::unique_ptr<Node>(const Params&)>;

/// How a step node's scalar outputs relate to the rows (batch entries) of its
/// inputs; what `train.accumulate` needs to split a batch into groups of rows
/// with one backward pass each and still give the same loss and gradients.
///   coupled  rows interact (a contrastive loss, a batch statistic): not split
///   mean     each scalar is a mean over rows of a per-row value with the same
///            weight per row, so on a batch it equals the row-weighted mean of
///            its values on the groups (Dice, L1, MSE, BCE, SSIM)
///   linear   each scalar is a fixed linear combination of its inputs' scalars
///            (a weighted sum of losses)
enum class RowRule { coupled, mean, linear };

/// Whether a step node lets a multi-process evaluation or validation pass
/// share its samples among the ranks (each rank sees about 1/W of them):
///   whole      it needs every sample on one rank (it collects, counts or
///              writes what a share would get wrong): the pass runs whole on
///              every rank. The default, safe for any node.
///   per_batch  its outputs depend on the batch alone and finish() collects
///              nothing (a network call, a loss)
///   gathers    it collects over batches and its finish() merges every rank's
///              collection through rank_sync()->gather (umrflow/rank_sync.h),
///              dropping the repeats with which a share is padded (same
///              sample index)
/// A pass is sharded when every step node is per_batch or gathers.
enum class Sharding { whole, per_batch, gathers };

struct NodeSpec {
  std::string type;     // registered name, e.g. "tensor.gaussian_noise"
  std::string summary;  // one line for listings
  NodeKind kind = NodeKind::sample;
  std::vector<ParamSpec> params;
  std::vector<PortSpec> inputs;  // sample nodes: one port; source nodes: none
  std::vector<KeySpec> outputs;  // keys this node writes (sample nodes keep the rest)
  /// Optional: outputs that depend on parameters (a shape parameter fixing a
  /// rank). When set it replaces `outputs` for validation.
  std::function<std::vector<KeySpec>(const Params&)> outputs_for;
  /// Step nodes: the summary figures finish() returns (rank 0), which a run
  /// reports as `ID.key` and a validation metric may name.
  std::vector<KeySpec> figures;
  /// Step nodes: see RowRule.
  RowRule rows = RowRule::coupled;
  /// Step nodes: see Sharding; `sharding_for`, when set, decides from the
  /// parameters instead.
  Sharding sharding = Sharding::whole;
  std::function<Sharding(const Params&)> sharding_for;
  NodeFactory create;

  std::vector<KeySpec> outputs_given(const Params& params) const {
    return outputs_for ? outputs_for(params) : outputs;
  }
  Sharding sharding_given(const Params& params) const { return sharding_for ? sharding_for(params) : sharding; }
};

}  // namespace umrflow
