// deferred_checks.h (engine-internal): where check_on_host() keeps the checks
// of a step on an accelerator (umrflow/step_checks.h), and when they are read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "umrflow/packet.h"

namespace umrflow {

/// The checks kept since the last read, in the order the nodes made them.
/// Used by the step's one thread only.
class DeferredChecks {
 public:
  struct Check {
    std::string node, type, samples;
    std::int64_t batch_index = 0;
    torch::Tensor failed;  // 0-dim bool, on the device
    std::function<std::string()> message;
  };
  void add(Check check) { pending_.push_back(std::move(check)); }
  /// Reads every kept flag in one transfer, forgets them, and throws a
  /// NodeError for the first that failed (its node, samples and batch index).
  void read();
  /// Forgets every kept check unread (a new epoch after a stopped one).
  void clear() { pending_.clear(); }
  std::size_t size() const { return pending_.size(); }

 private:
  std::vector<Check> pending_;
};

/// While alive on this thread, check_on_host() adds its checks to `sink`,
/// labelled with the node and the batch given (which must outlive the scope),
/// instead of reading them. With a null sink it changes nothing (checks are
/// read at once).
class DeferralScope {
 public:
  DeferralScope(DeferredChecks* sink, std::string node, std::string type, const Packet& batch, std::int64_t batch_index);
  ~DeferralScope();
  DeferralScope(const DeferralScope&) = delete;
  DeferralScope& operator=(const DeferralScope&) = delete;

 private:
  DeferralScope* outer_;
  DeferredChecks* sink_;
  std::string node_, type_;
  const Packet& batch_;
  std::int64_t batch_index_;
  friend void check_on_host(const torch::Tensor&, std::function<std::string()>);
};

}  // namespace umrflow
