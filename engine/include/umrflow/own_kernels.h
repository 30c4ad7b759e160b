// own_kernels.h: the process-wide choice between umrflow's own CPU kernels
// and libtorch's, where a node has both (`execution.own_kernels`). The engine
// only carries the choice; which kernels exist is the nodes' business
// (docs/benchmarks.md lists them with their measured gains).
#pragma once

namespace umrflow {

/// Whether nodes use umrflow's own CPU kernels where they have them; true
/// until set. A run sets it from its graph's `execution.own_kernels` before
/// its first step. Nodes read it when they choose a kernel, so it must not
/// change while a step runs.
bool own_kernels();
void set_own_kernels(bool on);

/// Sets own_kernels() for its lifetime, then restores the previous value.
class OwnKernelsScope {
 public:
  explicit OwnKernelsScope(bool on);
  ~OwnKernelsScope();
  OwnKernelsScope(const OwnKernelsScope&) = delete;
  OwnKernelsScope& operator=(const OwnKernelsScope&) = delete;

 private:
  bool previous_;
};

}  // namespace umrflow
