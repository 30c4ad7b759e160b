#include <ATen/CPUGeneratorImpl.h>

#include "umrflow/node.h"
#include "umrflow/random.h"

namespace umrflow {

Context::Context(std::uint64_t run_seed, std::int64_t epoch, std::int64_t index, const std::string& node_id,
                 bool training, torch::Device device)
    : epoch_(epoch),
      index_(index),
      training_(training),
      device_(device),
      seed_(derive_seed(run_seed, epoch, index, node_id)) {}

std::mt19937_64& Context::engine() {
  if (!engine_) engine_.emplace(seed_);
  return *engine_;
}

at::Generator& Context::generator() {
  if (!generator_) generator_.emplace(at::detail::createCPUGenerator(seed_));
  return *generator_;
}

}  // namespace umrflow
