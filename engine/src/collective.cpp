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

void Collective::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  torch::NoGradGuard no_grad;
  try {
    c10d::BroadcastOptions options;
    options.rootRank = root;
    flat_in_place(tensors, [&](std::vector<at::Tensor>& b) { impl_->group->broadcast(b, options)->wait(); });
  } catch (const std::exception& e) {
    fail(("broadcasting rank " + std::to_string(root) + "'s tensors").c_str(), e);
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

std::vector<bool> Collective::which(bool flag) {
  torch::Tensor t = torch::zeros({size_});
  t[rank_] = flag ? 1.0f : 0.0f;
  sum({t});
  std::vector<bool> out;
  for (int r = 0; r < size_; ++r) out.push_back(t[r].item<float>() > 0);
  return out;
}

// GradientReducer: hooks on the gradient accumulators report each parameter's
// arrival; buckets launch in index order.

struct GradientReducer::Impl {
  struct Bucket {
    std::vector<std::size_t> members;
    std::size_t waiting = 0;  // members whose gradient has not arrived since arm()
    torch::Tensor buffer;     // the members' gradients, flat, while reduced
    c10::intrusive_ptr<c10d::Work> work;
  };
  /// Reports a parameter's gradient as accumulated (a post hook of its
  /// AccumulateGrad node: it runs after .grad() is written).
  struct Arrival final : torch::autograd::FunctionPostHook {
    Arrival(Impl* owner, std::size_t param) : owner(owner), param(param) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list&) override {
      owner->arrive(param);
      return outputs;
    }
    Impl* owner;
    std::size_t param;
  };

  Collective& group;
  std::vector<torch::Tensor> params;
  std::vector<Bucket> buckets;
  std::vector<std::size_t> bucket_of;
  std::vector<char> arrived, had_gradient;
  // The accumulators are held here: a parameter keeps only a weak reference,
  // and a new accumulator would come without the hook.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  std::vector<std::uintptr_t> hooks;
  std::mutex mutex;
  bool armed = false;
  std::size_t next = 0;  // the first bucket not launched
  std::size_t early = 0;

  Impl(Collective& group, std::vector<torch::Tensor> list) : group(group), params(std::move(list)) {}

  void arrive(std::size_t p) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed || arrived[p]) return;
    arrived[p] = 1;
    --buckets[bucket_of[p]].waiting;
    while (next < buckets.size() && buckets[next].waiting == 0) launch(next++);
  }

  /// Starts bucket `b`'s sum; a member without a gradient adds zeros.
  void launch(std::size_t b) {
    torch::NoGradGuard no_grad;
    Bucket& bucket = buckets[b];
    std::vector<torch::Tensor> flat;
    for (std::size_t p : bucket.members) {
      const torch::Tensor& g = params[p].grad();
      had_gradient[p] = g.defined();
      flat.push_back(g.defined() ? g.reshape(-1) : torch::zeros({params[p].numel()}, params[p].options()));
    }
    bucket.buffer = torch::cat(flat);
    std::vector<at::Tensor> list{bucket.buffer};
    bucket.work = group.impl_->group->allreduce(list);
  }
};

GradientReducer::GradientReducer(Collective& group, std::vector<torch::Tensor> params, std::size_t bucket_bytes)
    : impl_(std::make_unique<Impl>(group, std::move(params))) {
  Impl& m = *impl_;
  const std::size_t n = m.params.size();
  m.bucket_of.assign(n, 0);
  m.arrived.assign(n, 0);
  m.had_gradient.assign(n, 0);
  std::size_t bytes = 0;
  for (std::size_t k = n; k-- > 0;) {
    const torch::Tensor& p = m.params[k];
    const std::size_t size = static_cast<std::size_t>(p.numel()) * p.element_size();
    const bool fits = !m.buckets.empty() && bytes + size <= bucket_bytes &&
                      m.params[m.buckets.back().members.front()].scalar_type() == p.scalar_type() &&
                      m.params[m.buckets.back().members.front()].device() == p.device();
    if (!fits) {
      m.buckets.emplace_back();
      bytes = 0;
    }
    m.buckets.back().members.push_back(k);
    m.bucket_of[k] = m.buckets.size() - 1;
    bytes += size;
  }
  for (std::size_t k = 0; k < n; ++k) {
    m.accumulators.push_back(torch::autograd::impl::grad_accumulator(m.params[k]));
    m.hooks.push_back(m.accumulators.back()->add_post_hook(std::make_unique<Impl::Arrival>(&m, k)));
  }
}

GradientReducer::~GradientReducer() {
  for (std::size_t k = 0; k < impl_->accumulators.size(); ++k) impl_->accumulators[k]->del_post_hook(impl_->hooks[k]);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Impl& m = *impl_;
  std::fill(m.arrived.begin(), m.arrived.end(), 0);
  for (auto& b : m.buckets) {
    b.waiting = b.members.size();
    b.work.reset();
    b.buffer = torch::Tensor();
  }
  m.next = 0;
  m.armed = true;
}

void GradientReducer::finish() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  const bool was_armed = m.armed;
  m.armed = false;
  if (!was_armed) m.next = 0;
  m.early = m.next;
  try {
    while (m.next < m.buckets.size()) m.launch(m.next++);
    // Which parameters had a gradient on any rank, summed beside the last bucket.
    torch::Tensor flags = torch::zeros({static_cast<std::int64_t>(m.params.size())});
    for (std::size_t k = 0; k < m.params.size(); ++k) flags[static_cast<std::int64_t>(k)] = m.had_gradient[k] ? 1.0f : 0.0f;
    std::vector<at::Tensor> list{flags};
    m.group.impl_->group->allreduce(list)->wait();
    for (auto& b : m.buckets) b.work->wait();
    const float* any = flags.data_ptr<float>();
    for (auto& b : m.buckets) {
      b.buffer.div_(static_cast<double>(m.group.size()));
      std::int64_t at = 0;
      for (std::size_t p : b.members) {
        torch::Tensor& param = m.params[p];
        const std::int64_t count = param.numel();
        if (any[p] > 0) {
          if (!param.grad().defined()) param.mutable_grad() = torch::zeros_like(param);
          param.mutable_grad().copy_(b.buffer.narrow(0, at, count).view_as(param));
        }
        at += count;
      }
      b.work.reset();
      b.buffer = torch::Tensor();
    }
  } catch (const std::exception& e) {
    m.group.fail("averaging the gradients over the ranks", e);
  }
}

std::size_t GradientReducer::buckets() const { return impl_->buckets.size(); }
std::size_t GradientReducer::launched_early() const { return impl_->early; }

}  // namespace umrflow
