// umrflow/scheduler.h: the data plane on a oneTBB flow graph.
//
// One epoch of the data plane is a flow graph:
//
//   tickets (queue) -> limiter(prefetch) -> load (source, parallel)
//     -> transform 1 (parallel) -> ... -> transform k (parallel)
//     -> sequencer (restores epoch order) -> batcher (serial)
//     -> queue -> limiter(2) -> feed (serial: collate, stage) -> step (serial)
//
// Sample transforms run concurrently on as many worker threads as the arena
// has. The limiter admits at most `prefetch` samples that have not yet been
// consumed by a finished step, so memory stays bounded however slow the step
// is; a step returns one token per sample it consumed. The feed collates each
// batch and runs DataPlane::stage on it (a device run copies the batch to the
// device there) while the step works on the previous one; its limiter keeps
// at most one batch made ahead of the one in the step. The sequencer hands
// samples to the batcher in epoch order, so batches (and everything after them)
// do not depend on thread timing. Randomness comes from Context, derived from
// (seed, epoch, sample index, node id), never from shared state.
//
// Skipping: a node that throws SkipSample drops that sample; it is listed in
// EpochResult::skipped and its place in the order is passed over.
//
// Timing: the epoch records how long the step plane worked (inside the batch
// handler) and how long it waited for its next batch, and the time each data
// node spent in its calls: the pipeline's efficiency (EpochResult).
//
// Failure: the first exception in any node cancels the graph; run_epoch then
// throws NodeError naming the node and the sample. A step callback that returns
// false stops the epoch after that step (how SIGINT is honoured).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "umrflow/node.h"

namespace umrflow {

struct DataPlane {
  struct Stage {
    SampleNode* node = nullptr;
    std::string id, type;
  };
  SourceNode* source = nullptr;
  std::string source_id, source_type;
  std::vector<Stage> transforms;
  std::string batch_id = "batch";  // the batch node's id, for its errors
  std::int64_t batch_size = 1;
  bool drop_last = false;
  std::int64_t prefetch = 8;  // must be >= batch_size
  std::uint64_t seed = 0;
  bool training = true;
  /// The epoch's samples in order; empty: 0 .. size - 1. A process of a
  /// multi-process run takes its share (shard_indices, umrflow/distributed.h);
  /// each sample's random draws stay keyed by its own index.
  std::vector<std::int64_t> indices;
  /// Optional: runs on each collated batch, in batch order, on a data-plane
  /// thread, at most one batch ahead of the step (while the step works on the
  /// previous batch): where a device run starts the batch's copy to the device.
  /// An exception fails the epoch as the batch node's.
  std::function<void(Packet& batch, std::int64_t batch_index)> stage;
};

struct EpochResult {
  std::int64_t samples = 0;  // samples that reached a finished step
  std::int64_t batches = 0;
  bool stopped = false;  // a step asked to stop
  struct Skip {
    std::string sample, node, reason;
  };
  std::vector<Skip> skipped;  // samples dropped by SkipSample, in no particular order

  double step_seconds = 0;  // inside the batch handler: the step plane at work
  double wait_seconds = 0;  // the step plane idle, waiting for its next batch (from the epoch's start)
  std::vector<double> batch_seconds;  // each batch's time in the handler, in batch order
  /// The median of batch_seconds, the upper of the two middle ones for an
  /// even count (0 for none): one step's time as step-timing scripts report
  /// it, unmoved by a slow first step.
  double median_batch_seconds() const;
  /// Fraction of the step plane's time spent working; below 1 the data plane
  /// kept it waiting.
  double busy_fraction() const {
    const double total = step_seconds + wait_seconds;
    return total > 0 ? step_seconds / total : 1.0;
  }
  struct NodeTime {
    std::string id, type;
    std::int64_t calls = 0;  // samples it handled (on any thread)
    double seconds = 0;      // summed over its calls
  };
  std::vector<NodeTime> data_nodes;  // the source, then each transform, in chain order
};

/// Called serially, in batch order. Return false to stop after this batch.
/// Throw NodeError to name the failing step node; any other exception is
/// reported as coming from the step plane.
using BatchHandler = std::function<bool(Packet& batch, std::int64_t batch_index)>;

/// Runs one epoch with `threads` worker threads (0: all cores).
EpochResult run_epoch(const DataPlane& plane, std::int64_t epoch, int threads, const BatchHandler& on_batch);

/// Number of batches an epoch of `samples` samples yields.
std::int64_t batches_per_epoch(std::int64_t samples, std::int64_t batch_size, bool drop_last);

}  // namespace umrflow
