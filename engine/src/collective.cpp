// Collectives on a Gloo process group (collective.h).
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp declares the class only under this
#include "collective.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <functional>
#include <map>

namespace umrflow {

struct Collective::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

[[noreturn]] void rethrow(int rank, const char* what, const std::exception& e) {
  throw std::runtime_error("rank " + std::to_string(rank) + ": " + what +
                           " failed; another rank stopped, died or timed out (its own message says why): " + e.what());
}

}  // namespace

Collective::Collective(const LaunchEnv& env, std::chrono::milliseconds timeout) : impl_(std::make_unique<Impl>()) {
  rank_ = env.rank;
  size_ = env.world_size;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = static_cast<std::size_t>(env.world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch.
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    gloo->devices.push_back(interface && *interface ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                                    : c10d::ProcessGroupGloo::createDefaultDevice());
    gloo->threads = 2;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, gloo);
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": cannot join the group at " +
                             env.master_addr + ":" + std::to_string(env.master_port) + " (" + env.source +
                             " environment; is every rank started, and the port free on rank 0's host?): " + e.what());
  }
}

Collective::~Collective() = default;

namespace {

/// Runs `op` on one flat buffer per (dtype, device) of `tensors`, then copies
/// the buffer back into them.
void flat_in_place(const std::vector<torch::Tensor>& tensors, const std::function<void(std::vector<at::Tensor>&)>& op) {
  std::map<std::pair<c10::ScalarType, std::string>, std::vector<torch::Tensor>> groups;
  for (const auto& t : tensors) groups[{t.scalar_type(), t.device().str()}].push_back(t);
  for (auto& [key, list] : groups) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : list) flat.push_back(t.reshape(-1));
    std::vector<at::Tensor> buffer{torch::cat(flat)};
    op(buffer);
    std::int64_t at = 0;
    for (const auto& t : list) {
      t.copy_(buffer[0].narrow(0, at, t.numel()).view_as(t));
      at += t.numel();
    }
  }
}

}  // namespace

void Collective::broadcast(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  try {
    flat_in_place(tensors, [&](std::vector<at::Tensor>& b) { impl_->group->broadcast(b)->wait(); });
  } catch (const std::exception& e) {
    rethrow(rank_, "broadcasting rank 0's weights", e);
  }
}

void Collective::sum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  try {
    flat_in_place(tensors, [&](std::vector<at::Tensor>& b) { impl_->group->allreduce(b)->wait(); });
  } catch (const std::exception& e) {
    rethrow(rank_, "summing over the ranks", e);
  }
}

void Collective::average_gradients(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  std::vector<float> has(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) has[i] = params[i].grad().defined() ? 1.0f : 0.0f;
  torch::Tensor flags = torch::tensor(has);
  sum({flags});
  std::vector<torch::Tensor> grads;
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (flags[i].item<float>() == 0) continue;
    auto& p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  if (grads.empty()) return;
  sum(grads);
  for (auto& g : grads) g.div_(static_cast<double>(size_));
}

bool Collective::any(bool flag) {
  torch::Tensor t = torch::tensor({flag ? 1.0f : 0.0f});
  sum({t});
  return t.item<float>() > 0;
}

}  // namespace umrflow
