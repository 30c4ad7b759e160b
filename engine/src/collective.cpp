// Collectives on a Gloo process group (collective.h).
#define USE_C10D_GLOO 1  // ProcessGroupGloo.hpp declares the class only under this
#include "collective.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <functional>
#include <map>

namespace umrflow {

namespace {

/// Each rank bumps its counter in the store this often; a counter that stands
/// still for kSilence after a failed collective marks a rank that is gone.
constexpr std::chrono::milliseconds kHeartbeat{500};
constexpr std::chrono::milliseconds kSilence{2500};

std::string alive_key(int rank) { return "umrflow/alive/" + std::to_string(rank); }

}  // namespace

struct Collective::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable wake;
  bool done = false;

  void beat(int rank) {
    std::unique_lock<std::mutex> lock(mutex);
    while (!done) {
      try {
        store->add(alive_key(rank), 1);
      } catch (const std::exception&) {
        return;  // the store is gone (rank 0 ended); a failed collective says so
      }
      wake.wait_for(lock, kHeartbeat, [&] { return done; });
    }
  }
};

std::string Collective::silent_ranks() const {
  std::vector<std::int64_t> before(static_cast<std::size_t>(size_));
  try {
    for (int r = 0; r < size_; ++r)
      if (r != rank_) before[r] = impl_->store->add(alive_key(r), 0);
    std::this_thread::sleep_for(kSilence);
    std::string gone;
    for (int r = 0; r < size_; ++r)
      if (r != rank_ && impl_->store->add(alive_key(r), 0) == before[r]) gone += (gone.empty() ? "" : ", ") + std::to_string(r);
    if (gone.empty()) return "every other rank is still alive: one of them stopped with its own error (its log says why) or is too slow";
    return (gone.find(',') == std::string::npos ? "rank " : "ranks ") + gone +
           " stopped answering (ended with its own error, killed, or its machine lost; its log says which)";
  } catch (const std::exception&) {
    return "rank 0, which hosts the rendezvous store, is gone (ended with its own error, killed, or its machine lost)";
  }
}

[[noreturn]] void Collective::fail(const char* what, const std::exception& e) const {
  throw std::runtime_error("rank " + std::to_string(rank_) + ": " + what + " failed: " + silent_ranks() + " [" + e.what() + "]");
}

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
    impl_->heartbeat = std::thread([impl = impl_.get(), rank = env.rank] { impl->beat(rank); });
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": cannot join the group at " +
                             env.master_addr + ":" + std::to_string(env.master_port) + " (" + env.source +
                             " environment; is every rank started, and the port free on rank 0's host?): " + e.what());
  }
}

Collective::~Collective() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->done = true;
  }
  impl_->wake.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
}

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
    fail("broadcasting rank 0's weights", e);
  }
}

void Collective::sum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  try {
    flat_in_place(tensors, [&](std::vector<at::Tensor>& b) { impl_->group->allreduce(b)->wait(); });
  } catch (const std::exception& e) {
    fail("summing over the ranks", e);
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

bool Collective::any(bool flag) { return count(flag) > 0; }

std::vector<std::string> Collective::gather(const std::string& bytes) {
  // Two sums: the lengths, then one row per rank that only its owner fills.
  torch::Tensor lengths = torch::zeros({size_}, torch::kInt64);
  lengths[rank_] = static_cast<std::int64_t>(bytes.size());
  sum({lengths});
  const std::int64_t longest = std::max<std::int64_t>(1, lengths.max().item<std::int64_t>());
  torch::Tensor rows = torch::zeros({size_, longest}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(rows[rank_].data_ptr(), bytes.data(), bytes.size());
  sum({rows});
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r)
    out.emplace_back(static_cast<const char*>(rows[r].data_ptr()), static_cast<std::size_t>(lengths[r].item<std::int64_t>()));
  return out;
}

int Collective::count(bool flag) {
  torch::Tensor t = torch::tensor({flag ? 1.0f : 0.0f});
  sum({t});
  return static_cast<int>(t.item<float>());
}

}  // namespace umrflow
