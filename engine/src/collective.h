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

  /// Overwrites `tensors` (in place) with rank 0's.
  void broadcast(const std::vector<torch::Tensor>& tensors);
  /// Sums `tensors` over the ranks, in place (one flat buffer per dtype).
  void sum(const std::vector<torch::Tensor>& tensors);
  /// The gradients of `params` averaged over the ranks as DDP does (sum /
  /// size). A parameter without a gradient on every rank keeps none; one with
  /// a gradient on some ranks counts zeros on the others.
  void average_gradients(const std::vector<torch::Tensor>& params);
  /// Every rank's `bytes`, in rank order, on every rank.
  std::vector<std::string> gather(const std::string& bytes);
  /// True when `flag` is true on any rank.
  bool any(bool flag);
  /// How many ranks pass `flag` true.
  int count(bool flag);

 private:
  /// Which other ranks stopped beating (each rank bumps a counter in the
  /// store twice a second); takes a few seconds.
  std::string silent_ranks() const;
  [[noreturn]] void fail(const char* what, const std::exception& e) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
};

}  // namespace umrflow
