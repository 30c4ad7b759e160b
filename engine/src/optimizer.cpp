#include "optimizer.h"

#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>

#include <ATen/ATen.h>

namespace umrflow {

namespace {

/// The key torch::optim keeps a parameter's state under (a string of the
/// TensorImpl address in libtorch 1.x, the address itself later).
template <typename Key>
Key state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

/// Parameters updated together: one step count, device and dtype.
struct Bucket {
  std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq;
  std::vector<torch::optim::AdamWParamState*> states;
};

}  // namespace

torch::Tensor MultiTensorAdamW::step(LossClosure closure) {
  for (const auto& group : param_groups_)
    if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad()) return AdamW::step(std::move(closure));
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  using Key = typename std::decay_t<decltype(state_)>::key_type;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    std::map<std::tuple<std::int64_t, std::string, int>, Bucket> buckets;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "AdamW does not support sparse gradients");
      const Key key = state_key<Key>(p);
      auto found = state_.find(key);
      if (found == state_.end()) {  // inserted only when complete
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = state_.emplace(key, std::move(fresh)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*found->second);
      Bucket& b = buckets[{s.step() + 1, p.device().str(), static_cast<int>(p.scalar_type())}];
      b.params.push_back(p);
      b.grads.push_back(p.grad());
      b.exp_avg.push_back(s.exp_avg());
      b.exp_avg_sq.push_back(s.exp_avg_sq());
      b.states.push_back(&s);
    }
    for (auto& [key, b] : buckets) {
      const std::int64_t step = std::get<0>(key);
      const double bias_correction1 = 1 - std::pow(beta1, step), bias_correction2 = 1 - std::pow(beta2, step);
      if (o.weight_decay() != 0) at::_foreach_mul_(b.params, 1 - o.lr() * o.weight_decay());
      at::_foreach_mul_(b.exp_avg, beta1);
      at::_foreach_add_(b.exp_avg, b.grads, 1 - beta1);
      at::_foreach_mul_(b.exp_avg_sq, beta2);
      at::_foreach_addcmul_(b.exp_avg_sq, b.grads, b.grads, 1 - beta2);
      std::vector<torch::Tensor> denom = at::_foreach_sqrt(b.exp_avg_sq);
      at::_foreach_div_(denom, std::sqrt(bias_correction2));
      at::_foreach_add_(denom, o.eps());
      at::_foreach_addcdiv_(b.params, b.exp_avg, denom, -(o.lr() / bias_correction1));
      for (auto* state : b.states) state->step(step);
    }
  }
  return loss;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainSettings& t, std::vector<torch::Tensor> params) {
  if (params.empty())
    throw std::runtime_error("train: no trainable parameters (every module is frozen, or the graph declares none)");
  // A tensor shared by two modules is one parameter: stepped once per step.
  std::set<const void*> seen;
  std::vector<torch::Tensor> unique;
  for (auto& p : params)
    if (seen.insert(p.unsafeGetTensorImpl()).second) unique.push_back(p);
  params = std::move(unique);
  if (t.optimizer == "sgd")
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(t.lr).momentum(t.momentum).weight_decay(t.weight_decay));
  if (t.optimizer == "adam")
    return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(t.lr).weight_decay(t.weight_decay));
  return std::make_unique<MultiTensorAdamW>(params, torch::optim::AdamWOptions(t.lr).weight_decay(t.weight_decay));
}

void StepGradients::clear() {
  // The first clear after a resume finds no gradient: a parameter with
  // optimizer state (Adam's moments, SGD's momentum) had one before.
  using Key = typename std::decay_t<decltype(optimizer_.state())>::key_type;
  const bool first = !cleared_;
  cleared_ = true;
  had_.clear();
  for (auto& group : optimizer_.param_groups())
    for (auto& p : group.params()) {
      had_.push_back(p.grad().defined() || (first && optimizer_.state().count(state_key<Key>(p)) > 0));
      p.mutable_grad() = torch::Tensor();
    }
}

void StepGradients::step() {
  std::size_t i = 0;
  for (auto& group : optimizer_.param_groups())
    for (auto& p : group.params()) {
      if (i < had_.size() && had_[i] && !p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      ++i;
    }
  optimizer_.step();
}

}  // namespace umrflow
