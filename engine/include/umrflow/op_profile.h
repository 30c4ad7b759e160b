// op_profile.h: where a run's time goes, op by op, as
// `umrflow bench --profile` prints it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace umrflow {

/// While alive, times every libtorch op (and autograd node, and the step
/// nodes' scopes that Instance opens: "node <id>") that any thread runs,
/// through a global RecordFunction callback. An op's self time is its time
/// less that of the ops it called on the same thread (a convolution's
/// oneDNN call counts to the innermost op that made it). One profile at a
/// time in a process; a second throws std::logic_error. Every recorded call
/// pays for the callback (a clock read, a map update under a lock), so an op
/// called many thousand times per step looks costlier than it is unprofiled.
/// Callees are subtracted on the caller's thread only: work another thread
/// does for a call (autograd's device threads on CUDA, the data plane's
/// workers) counts to that thread's ops as well, so self times can add up to
/// more than the wall time.
class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  struct Row {
    std::string name;
    std::int64_t calls = 0;
    double self_s = 0;   // summed over calls, callees excluded
    double total_s = 0;  // summed over calls, callees included (a recursive op counts its outermost calls)
  };
  /// What was recorded so far (calls still open are left out), by self time,
  /// largest first.
  std::vector<Row> rows() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

/// A Markdown table of the `top` rows with the most self time: calls, self
/// and total milliseconds per `per` (steps, say; 1 for totals) and each row's
/// share of all self time.
std::string op_profile_table(const std::vector<OpProfile::Row>& rows, std::size_t top, std::int64_t per);

}  // namespace umrflow
