// collective.h: the collectives a multi-process run needs, on a libtorch c10d
// process group (Gloo; its CPU collectives also take CUDA tensors). Rank 0
// hosts the rendezvous store at MASTER_ADDR:MASTER_PORT (umrflow/distributed.h).
//
// Every call is a collective: all ranks make the same calls in the same order
// with tensors of the same shapes. A rank that died or stopped calling makes
// the others' call throw after `timeout` (or at once when its connection
// closes), with a message that names the ranks that stopped answering.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "umrflow/distributed.h"

namespace umrflow {

class Collective {
 public:
  Collective(const LaunchEnv& env, std::chrono::milliseconds timeout);
  ~Collective();
  int rank() const { return rank_; }
  int size() const { return size_; }

  /// Overwrites `tensors` (in place) with rank `root`'s.
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  /// Sums `tensors` over the ranks, in place (one flat buffer per dtype).
  void sum(const std::vector<torch::Tensor>& tensors);
  /// Every rank's `bytes`, in rank order, on every rank.
  std::vector<std::string> gather(const std::string& bytes);
  /// True when `flag` is true on any rank.
  bool any(bool flag);
  /// How many ranks pass `flag` true.
  int count(bool flag);
  /// Which ranks pass `flag` true, in rank order.
  std::vector<bool> which(bool flag);

 private:
  /// Which other ranks stopped beating (each rank bumps a counter in the
  /// store twice a second); takes a few seconds.
  std::string silent_ranks() const;
  [[noreturn]] void fail(const char* what, const std::exception& e) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  friend class GradientReducer;
};

/// Averages the gradients of `params` over the ranks as DDP does (sum / size),
/// in buckets of about `bucket_bytes` (parameters in reverse order, the order
/// in which backward tends to finish them; a bucket holds one dtype on one
/// device). After `arm()`, the next backward pass launches each bucket's
/// all-reduce as soon as every gradient in it has been accumulated and every
/// bucket before it has been launched (so all ranks launch in one order), which
/// overlaps the reduction with the rest of the backward pass. `finish()`
/// launches the buckets still waiting, waits for all and writes the averages
/// back; a rank with no gradient at all (one that joined, PyTorch's Join)
/// calls `finish()` alone and takes part with zeros. As `average_gradients`:
/// a parameter with a gradient on no rank keeps none; one with a gradient on
/// some ranks counts zeros on the others. Sums per element are those of one
/// flat all-reduce, whatever the bucket size.
///
/// The hooks sit on the parameters' gradient accumulators for the reducer's
/// lifetime; they act only between `arm()` and `finish()`. Arm only the last
/// backward pass before the optimizer step (a step with several backward
/// passes, such as stage 3 per group, calls `finish()` after the last one).
class GradientReducer {
 public:
  GradientReducer(Collective& group, std::vector<torch::Tensor> params, std::size_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void arm();
  void finish();
  std::size_t buckets() const;
  /// Buckets the last `finish()` found already launched by the backward pass.
  std::size_t launched_early() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace umrflow
