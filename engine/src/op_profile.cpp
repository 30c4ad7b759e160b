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
  std::uint64_t profile = 0;  // the profile it began under
  std::string name;
  Clock::time_point start;
  double callees_s = 0;
  bool outermost = true;  // no open call of the same name below it on this thread
};

}  // namespace

struct OpProfile::State {
  std::map<std::string, Totals> totals;  // under `recording`
  at::CallbackHandle handle = 0;
  std::uint64_t number = 0;
};

namespace {

// Profiles are numbered from 1; 0: none records. A call that ends updates the
// totals under `recording` only if its profile is still the one recording,
// which the destructor ends under the same lock: a call on another thread
// that outlives its profile never touches freed totals.
std::atomic<std::uint64_t> recording_number{0};
std::uint64_t profiles_made = 0;  // under `recording`
OpProfile::State* recording_state = nullptr;  // under `recording`
std::mutex recording;

// This thread's open calls, innermost last, all of profile `open_for`: they
// are owned by their RecordFunction, which ends each one (on_end pops it)
// before it is freed, exceptions included.
thread_local std::vector<Open*> open_calls;
thread_local std::uint64_t open_for = 0;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  const std::uint64_t number = recording_number.load();
  if (number == 0) return nullptr;
  if (open_for != number) {  // calls of an earlier profile: none is read again
    open_calls.clear();
    open_for = number;
  }
  auto call = std::make_unique<Open>();
  call->profile = number;
  call->name = fn.name();
  for (const Open* o : open_calls)
    if (o->name == call->name) call->outermost = false;
  call->start = Clock::now();
  open_calls.push_back(call.get());
  return call;
}

void on_end(const at::RecordFunction&, at::ObserverContext* context) {
  auto* call = static_cast<Open*>(context);
  if (!call) return;
  const auto it = std::find(open_calls.rbegin(), open_calls.rend(), call);
  if (it == open_calls.rend()) return;  // began under an earlier profile, its stack since cleared
  open_calls.erase(std::next(it).base(), open_calls.end());
  const double seconds = std::chrono::duration<double>(Clock::now() - call->start).count();
  if (!open_calls.empty()) open_calls.back()->callees_s += seconds;
  if (call->profile != recording_number.load()) return;
  std::lock_guard<std::mutex> lock(recording);
  if (!recording_state || recording_state->number != call->profile) return;
  Totals& t = recording_state->totals[call->name];
  t.calls += 1;
  t.self_s += std::max(0.0, seconds - call->callees_s);
  if (call->outermost) t.total_s += seconds;
}

}  // namespace

OpProfile::OpProfile() : state_(std::make_unique<State>()) {
  {
    std::lock_guard<std::mutex> lock(recording);
    if (recording_state) throw std::logic_error("OpProfile: another profile is already recording in this process");
    state_->number = ++profiles_made;
    recording_state = state_.get();
    recording_number.store(state_->number);
  }
  state_->handle = at::addGlobalCallback(
      at::RecordFunctionCallback(on_start, on_end).scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION, at::RecordScope::USER_SCOPE}));
}

OpProfile::~OpProfile() {
  at::removeCallback(state_->handle);
  std::lock_guard<std::mutex> lock(recording);
  recording_number.store(0);
  recording_state = nullptr;
}

std::vector<OpProfile::Row> OpProfile::rows() const {
  std::vector<Row> out;
  {
    std::lock_guard<std::mutex> lock(recording);
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
