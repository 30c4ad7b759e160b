#include "deferred_checks.h"

#include <stdexcept>

#include "umrflow/diagnostics.h"
#include "umrflow/step_checks.h"

namespace umrflow {

namespace {
thread_local DeferralScope* current = nullptr;
}

DeferralScope::DeferralScope(DeferredChecks* sink, std::string node, std::string type, const Packet& batch, std::int64_t batch_index)
    : outer_(current), sink_(sink), node_(std::move(node)), type_(std::move(type)), batch_(batch), batch_index_(batch_index) {
  current = this;
}

DeferralScope::~DeferralScope() { current = outer_; }

void check_on_host(const torch::Tensor& failed, std::function<std::string()> message) {
  if (!failed.defined()) throw std::logic_error("check_on_host: the flag tensor is undefined");
  const torch::Tensor any = failed.numel() == 0 ? torch::zeros({}, failed.options().dtype(torch::kBool)) : failed.any().to(torch::kBool);
  if (current == nullptr || current->sink_ == nullptr) {
    if (any.item<bool>()) throw std::runtime_error(message());
    return;
  }
  current->sink_->add({current->node_, current->type_, current->batch_.sample_names(), current->batch_index_, any.detach(), std::move(message)});
}

void DeferredChecks::read() {
  if (pending_.empty()) return;
  std::vector<torch::Tensor> flags;
  for (const auto& c : pending_) flags.push_back(c.failed.to(pending_.front().failed.device()).reshape({}));
  const torch::Tensor host = torch::stack(flags).to(torch::kCPU);  // the one wait for the device
  std::vector<Check> checks;
  checks.swap(pending_);
  const bool* f = host.data_ptr<bool>();
  for (std::size_t i = 0; i < checks.size(); ++i)
    if (f[i])
      throw NodeError(checks[i].node, checks[i].type, checks[i].samples,
                      checks[i].message() + " (batch " + std::to_string(checks[i].batch_index) +
                          " of the epoch; on an accelerator such checks are read at the next logged step)");
}

}  // namespace umrflow
