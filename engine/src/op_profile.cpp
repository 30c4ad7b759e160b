#include "umrflow/op_profile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>

namespace umrflow {

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::int64_t calls = 0;
  double self_s = 0, total_s = 0;
};

struct Open : at::ObserverContext {
  std::string name;
  Clock::time_point start;
  double callees_s = 0;
  bool outermost = true;  // no open call of the same name below it on this thread
};

}  // namespace

struct OpProfile::State {
  std::mutex mutex;
  std::map<std::string, Totals> totals;
  at::CallbackHandle handle = 0;
};

namespace {

std::atomic<OpProfile::State*> active{nullptr};
// The state a thread's open calls belong to, so that calls opened under an
// earlier profile are never closed into a later one.
thread_local std::vector<Open*> open_calls;
thread_local OpProfile::State* open_for = nullptr;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  OpProfile::State* state = active.load();
  if (!state) return nullptr;
  if (open_for != state) {
    open_calls.clear();
    open_for = state;
  }
  auto call = std::make_unique<Open>();
  call->name = fn.name();
  for (const Open* o : open_calls)
    if (o->name == call->name) call->outermost = false;
  call->start = Clock::now();
  open_calls.push_back(call.get());
  return call;
}

void on_end(const at::RecordFunction&, at::ObserverContext* context) {
  auto* call = static_cast<Open*>(context);
  OpProfile::State* state = active.load();
  if (!call || !state || open_for != state) return;
  // Calls end in the reverse order they began on a thread; one that never
  // ended (an exception past it) is dropped with its callers' accounting.
  auto it = std::find(open_calls.rbegin(), open_calls.rend(), call);
  if (it == open_calls.rend()) return;
  open_calls.erase(std::next(it).base(), open_calls.end());
  const double seconds = std::chrono::duration<double>(Clock::now() - call->start).count();
  if (!open_calls.empty()) open_calls.back()->callees_s += seconds;
  std::lock_guard<std::mutex> lock(state->mutex);
  Totals& t = state->totals[call->name];
  t.calls += 1;
  t.self_s += std::max(0.0, seconds - call->callees_s);
  if (call->outermost) t.total_s += seconds;
}

}  // namespace

OpProfile::OpProfile() : state_(std::make_shared<State>()) {
  State* expected = nullptr;
  if (!active.compare_exchange_strong(expected, state_.get()))
    throw std::logic_error("OpProfile: another profile is already recording in this process");
  state_->handle = at::addGlobalCallback(
      at::RecordFunctionCallback(on_start, on_end).scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION, at::RecordScope::USER_SCOPE}));
}

OpProfile::~OpProfile() {
  at::removeCallback(state_->handle);
  active.store(nullptr);
}

std::vector<OpProfile::Row> OpProfile::rows() const {
  std::vector<Row> out;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    for (const auto& [name, t] : state_->totals) out.push_back({name, t.calls, t.self_s, t.total_s});
  }
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.self_s > b.self_s; });
  return out;
}

std::string op_profile_table(const std::vector<OpProfile::Row>& rows, std::size_t top, std::int64_t per) {
  double all = 0;
  for (const auto& r : rows) all += r.self_s;
  const double n = static_cast<double>(std::max<std::int64_t>(per, 1));
  std::string out = "| op | calls | self ms | self % | total ms |\n|---|---|---|---|---|\n";
  char line[512];
  for (std::size_t i = 0; i < rows.size() && i < top; ++i) {
    const auto& r = rows[i];
    std::snprintf(line, sizeof line, "| %s | %.1f | %.2f | %.1f | %.2f |\n", r.name.c_str(), r.calls / n, 1000 * r.self_s / n,
                  all > 0 ? 100 * r.self_s / all : 0.0, 1000 * r.total_s / n);
    out += line;
  }
  return out;
}

}  // namespace umrflow
