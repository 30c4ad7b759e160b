// umrflow/node.h: the interface a node implements.
//
// A node type is a class derived from one of SourceNode, SampleNode or StepNode
// (or ModuleNode, in module.h) plus a NodeSpec (node_spec.h) that declares its
// parameters and ports and holds a factory. Nodes never see TBB: the scheduler
// calls them, possibly from several threads at once for sample nodes, and hands
// each call a Context. A node must therefore keep no mutable state between
// calls of apply()/load() other than what it protects itself; randomness comes
// only from the Context.
//
// Errors: a node throws an ordinary exception (std::runtime_error and the like)
// with a message that says what is wrong with the data; the scheduler adds the
// node's id and the sample's id, cancels the graph and reports it.
//
//   class GaussianNoise final : public umrflow::SampleNode {
//    public:
//     explicit GaussianNoise(const umrflow::Params& p) : std_(p.get_number("std")) {}
//     void apply(umrflow::Packet& s, umrflow::Context& ctx) override {
//       auto& x = s.at("image");
//       x = x + std_ * torch::randn(x.sizes(), ctx.generator(), x.options());
//     }
//    private:
//     double std_;
//   };
#pragma once

#include <map>

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "umrflow/node_spec.h"
#include "umrflow/packet.h"

namespace umrflow {

/// Thrown by a source or sample node to drop the current sample instead of
/// failing the run (a node's `on_bad_case: skip` policy). The scheduler leaves
/// the sample out of its batch and reports it; the run lists it in skipped.tsv.
class SkipSample : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What a node call knows about its circumstances. One Context per call.
class Context {
 public:
  Context(std::uint64_t run_seed, std::int64_t epoch, std::int64_t index, const std::string& node_id,
          bool training, torch::Device device = torch::kCPU);

  std::int64_t epoch() const { return epoch_; }
  /// Sample index within the epoch (data plane) or batch index (step plane).
  std::int64_t index() const { return index_; }
  bool training() const { return training_; }
  /// The device the step plane runs on (always CPU on the data plane).
  torch::Device device() const { return device_; }
  /// Seed of this call's stream: derive_seed(run seed, epoch, index, node id).
  std::uint64_t seed() const { return seed_; }

  /// A standard-library engine seeded from seed().
  std::mt19937_64& engine();
  /// A torch CPU generator seeded from seed() (for torch::rand and friends).
  at::Generator& generator();

 private:
  std::int64_t epoch_, index_;
  bool training_;
  torch::Device device_;
  std::uint64_t seed_;
  std::optional<std::mt19937_64> engine_;
  std::optional<at::Generator> generator_;
};

class Node {
 public:
  virtual ~Node() = default;
  /// The id given in the graph file; set by the engine after construction.
  const std::string& id() const { return id_; }
  void set_id(std::string id) { id_ = std::move(id); }

 private:
  std::string id_;
};

/// Produces the samples of an epoch. load() may be called from several threads.
class SourceNode : public Node {
 public:
  /// Number of samples per epoch.
  virtual std::int64_t size() const = 0;
  /// Sample `index` (0 <= index < size()). Fill tensors and samples[0].id.
  virtual Packet load(std::int64_t index, Context& ctx) = 0;
};

/// Transforms one sample in place. Called concurrently for different samples.
class SampleNode : public Node {
 public:
  virtual void apply(Packet& sample, Context& ctx) = 0;
};

/// Runs once per batch on the step plane, serially. `inputs` follow the order of
/// the spec's ports (a variadic port contributes one packet per bound input).
class StepNode : public Node {
 public:
  virtual Packet run(const std::vector<Packet>& inputs, Context& ctx) = 0;
  /// Called once after the last epoch (also of an interrupted run) with the run
  /// directory, for nodes that collect over batches and write a report there.
  /// Returns summary figures of the whole pass (e.g. a report's averages); the
  /// engine adds them, as `ID.key`, to the run's final metrics (what a sweep
  /// tabulates) and, for a validation pass, to that epoch's `val.` metrics.
  virtual std::map<std::string, double> finish(const std::string& run_dir) {
    (void)run_dir;
    return {};
  }
};

/// The usual factory: constructs T from its parsed parameters.
///   spec.create = umrflow::factory_of<GaussianNoise>();
template <typename T>
NodeFactory factory_of() {
  return [](const Params& params) -> std::unique_ptr<Node> { return std::make_unique<T>(params); };
}

}  // namespace umrflow
