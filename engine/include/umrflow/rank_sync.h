// umrflow/rank_sync.h: collectives over the ranks of a multi-process run, for
// step nodes: BatchNorm statistics over the global batch (SyncBatchNorm), and
// the merge of an evaluation's results when the ranks share its samples.
//
// `umrflow run` makes a RankSync active
//   - around each training step (forward and backward) when the graph sets
//     execution.sync_bn: `sum` is set;
//   - around the finish() calls of a sharded evaluation or validation pass
//     (Sharding in umrflow/node_spec.h): `gather` is set;
// otherwise rank_sync() is null and a node works on what it saw, as one
// process does.
//
// Both are collectives: every rank calls them the same number of times, in
// the same order (with tensors of the same shape and dtype for `sum`): the
// graph is the same on every rank, so its nodes' calls are. A rank that died
// makes them throw.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace umrflow {

struct RankSync {
  int rank = 0;
  int size = 1;
  /// Replaces `t` (in place) by its sum over every rank.
  std::function<void(const torch::Tensor& t)> sum;
  /// Every rank's `bytes`, in rank order (each rank gets them all).
  std::function<std::vector<std::string>(const std::string& bytes)> gather;
};

/// The active sync, or null. Read from any thread (libtorch may run a
/// backward pass on its own threads).
const RankSync* rank_sync();

/// Makes `sync` active for the scope's lifetime (null: none).
class RankSyncScope {
 public:
  explicit RankSyncScope(const RankSync* sync);
  ~RankSyncScope();
  RankSyncScope(const RankSyncScope&) = delete;
  RankSyncScope& operator=(const RankSyncScope&) = delete;

 private:
  const RankSync* previous_;
};

}  // namespace umrflow
