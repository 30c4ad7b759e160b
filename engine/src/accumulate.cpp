// accumulate.cpp: Instance::run_step_grouped (train.accumulate), one backward
// pass per group of rows. See instance.h and graph.h (TrainSettings).
#include <set>

#include "instance.h"

namespace umrflow {

namespace {

struct Ref {
  std::string node, key;
};
Ref split_ref(const std::string& text) {
  const auto dot = text.find('.');
  return {text.substr(0, dot), text.substr(dot + 1)};
}

/// A run of equal non-zero labels: entries [first, first + count) of the
/// non-zero labels, in order.
struct Group {
  std::int64_t label, first, count;
};

std::vector<Group> label_runs(const torch::Tensor& labels, const std::string& name, std::int64_t& nonzero) {
  if (labels.dim() != 1 || labels.is_floating_point())
    throw std::runtime_error("train.accumulate.groups '" + name + "' must be a 1-D integer tensor of labels, got " +
                             std::string(labels.dtype().name()) + " " + c10::str(labels.sizes()));
  const torch::Tensor l = labels.to(torch::kCPU).to(torch::kLong).contiguous();
  const std::int64_t* v = l.data_ptr<std::int64_t>();
  std::vector<Group> out;
  std::set<std::int64_t> done;
  nonzero = 0;
  for (std::int64_t i = 0; i < l.numel(); ++i) {
    if (v[i] < 0) throw std::runtime_error("train.accumulate.groups '" + name + "' holds a negative label");
    if (v[i] == 0) continue;
    if (!out.empty() && out.back().label == v[i]) {
      ++out.back().count;
    } else {
      if (!done.insert(v[i]).second)
        throw std::runtime_error("train.accumulate.groups '" + name + "': label " + std::to_string(v[i]) +
                                 " comes back after another label; each group's entries must be consecutive");
      out.push_back({v[i], nonzero, 1});
    }
    ++nonzero;
  }
  if (out.empty()) throw std::runtime_error("train.accumulate.groups '" + name + "' labels no entry (all zero)");
  return out;
}

/// The packet with every tensor detached; those that had a gradient become
/// leaves that require one, so a gradient reaching them can be detected.
Packet detached(const Packet& p) {
  Packet out = p;
  for (auto& [key, t] : out.tensors) {
    if (!t.defined()) continue;
    const bool grad = t.requires_grad();
    t = t.detach();
    if (grad) t.requires_grad_(true);
  }
  return out;
}

/// Zero scalars for the rank-0 (or any-rank) keys a node provides: a term
/// left out of a weighted sum.
Packet zero_scalars(const NodeDecl& d, torch::Device device) {
  Packet out;
  for (const auto& [key, rank] : d.provides)
    if (rank == 0 || rank == -1) out.tensors[key] = torch::zeros({}, torch::TensorOptions().device(device));
  return out;
}

/// Adds weight * each floating scalar of `p` to `sums` (in float64; the
/// scalar's own type is kept in `types` to convert back).
void add_scalars(std::map<std::string, torch::Tensor>& sums, std::map<std::string, c10::ScalarType>& types, const Packet& p,
                 double weight) {
  for (const auto& [key, t] : p.tensors) {
    if (!t.defined() || t.dim() != 0 || !t.is_floating_point()) continue;
    const torch::Tensor w = t.detach().to(torch::kDouble) * weight;
    types[key] = t.scalar_type();
    auto it = sums.find(key);
    if (it == sums.end()) sums.emplace(key, w);
    else it->second = it->second + w;
  }
}

}  // namespace

std::map<std::string, Packet> Instance::run_step_grouped(const Packet& batch, std::int64_t epoch, std::int64_t batch_index,
                                                         const Backward& backward) const {
  const TrainSettings& t = graph_.train;
  const std::string& batch_id = graph_.batch().id;
  const std::size_t n = graph_.step.size();
  std::size_t objective = n;
  for (std::size_t i = 0; i < n; ++i)
    if (graph_.step[i].id == t.objective) objective = i;
  const NodeDecl& obj = graph_.step.at(objective);
  const bool linear_objective = obj.spec && obj.spec->rows == RowRule::linear;

  // 1. The unsplit nodes, once.
  std::map<std::string, Packet> outs;
  const Lookup shared_lookup = [&](const std::string& id) -> const Packet& { return id == batch_id ? batch : outs.at(id); };
  for (std::size_t i = 0; i < n; ++i)
    if (!dependent_[i]) outs[graph_.step[i].id] = run_node(i, shared_lookup, batch, epoch, batch_index, true);

  // 2. The objective's unsplit terms (a weighted sum), backward first: the
  //    complete path's graph is freed before any group runs, as released.
  std::map<std::string, Packet> zeros;  // made when the objective asks for a term it leaves out
  const auto zero = [&](const std::string& id) -> const Packet& {
    auto it = zeros.find(id);
    if (it == zeros.end()) it = zeros.emplace(id, zero_scalars(id == batch_id ? graph_.batch() : *graph_.find(id), device_)).first;
    return it->second;
  };
  torch::Tensor total;
  const std::set<std::string> dependent(t.accumulate_dependent.begin(), t.accumulate_dependent.end());
  bool has_shared_terms = false;
  for (const auto& r : obj.inputs) has_shared_terms = has_shared_terms || !dependent.count(r.node);
  const bool split_sum = linear_objective && has_shared_terms;
  if (split_sum) {
    const Lookup only_shared = [&](const std::string& id) -> const Packet& {
      auto it = outs.find(id);
      return it != outs.end() ? it->second : zero(id);
    };
    total = run_node(objective, only_shared, batch, epoch, batch_index, true).at("loss");
    if (total.requires_grad()) backward(total, "the terms computed once per batch");
    total = total.detach().to(torch::kDouble);
  }

  // 3. The groups.
  std::map<std::string, Packet> fixed;  // unsplit outputs, detached
  for (const auto& [id, p] : outs) fixed[id] = detached(p);
  const Ref groups_ref = split_ref(t.accumulate_groups);
  const Packet& groups_src = groups_ref.node == batch_id ? batch : outs.at(groups_ref.node);
  const torch::Tensor labels = groups_src.at(groups_ref.key);
  std::int64_t nonzero = 0;
  const std::vector<Group> groups = label_runs(labels, t.accumulate_groups, nonzero);
  std::map<std::string, std::map<std::string, torch::Tensor>> sums;  // dependent node -> key -> weighted sum
  std::map<std::string, std::map<std::string, c10::ScalarType>> types;
  for (const Group& g : groups) {
    const std::string part = "group " + std::to_string(g.label) + " of " + t.accumulate_groups;
    // The producers of split tensors, seen by this group.
    std::map<std::string, Packet> split;
    auto view = [&](const std::string& id) -> Packet& {
      auto it = split.find(id);
      if (it != split.end()) return it->second;
      return split[id] = id == batch_id ? batch : fixed.at(id);
    };
    view(groups_ref.node).tensors[groups_ref.key] = torch::full({g.count}, g.label, labels.options());
    for (const auto& text : t.accumulate_slice) {
      const Ref r = split_ref(text);
      const torch::Tensor whole = (r.node == batch_id ? batch : outs.at(r.node)).at(r.key);
      if (whole.dim() == 0 || whole.size(0) % nonzero != 0)
        throw std::runtime_error("train.accumulate.slice '" + text + "' has " + (whole.dim() ? std::to_string(whole.size(0)) : "no") +
                                 " rows, not a multiple of the " + std::to_string(nonzero) + " labelled entries of " + t.accumulate_groups);
      const std::int64_t per = whole.size(0) / nonzero;
      view(r.node).tensors[r.key] = view(r.node).tensors[r.key].narrow(0, g.first * per, g.count * per);
    }
    std::map<std::string, Packet> group_outs;
    const Lookup group_lookup = [&](const std::string& id) -> const Packet& {
      if (auto it = group_outs.find(id); it != group_outs.end()) return it->second;
      if (auto it = split.find(id); it != split.end()) return it->second;
      return id == batch_id ? batch : fixed.at(id);
    };
    const Lookup objective_lookup = [&](const std::string& id) -> const Packet& {
      if (auto it = group_outs.find(id); it != group_outs.end()) return it->second;
      return zero(id);  // unsplit terms were counted in step 2
    };
    const double share = static_cast<double>(g.count) / static_cast<double>(nonzero);
    for (std::size_t i = 0; i < n; ++i) {
      if (!dependent_[i]) continue;
      group_outs[graph_.step[i].id] = run_node(i, i == objective && split_sum ? objective_lookup : group_lookup, batch, epoch, batch_index, true);
    }
    const torch::Tensor loss = group_outs.at(t.objective).at("loss");
    backward(loss * share, part);
    for (const auto& [id, p] : fixed)
      for (const auto& [key, tensor] : p.tensors)
        if (tensor.defined() && tensor.requires_grad() && tensor.grad().defined())
          throw std::runtime_error("with train.accumulate, a gradient reaches '" + id + "." + key + "' (computed once per batch) from " +
                                   part + "; a loss that compares with it must detach it (e.g. `detach_target: true`), or drop "
                                   "train.accumulate");
    for (const auto& [id, p] : group_outs) add_scalars(sums[id], types[id], p, share);
    const torch::Tensor weighted = loss.detach().to(torch::kDouble) * share;
    total = total.defined() ? total + weighted : weighted;
  }

  // 4. What run_step would return, as far as scalars go.
  for (auto& [id, keys] : sums) {
    Packet p;
    p.samples = batch.samples;
    for (auto& [key, value] : keys) p.tensors[key] = value.to(types[id][key]);
    outs[id] = std::move(p);
  }
  outs[t.objective].tensors["loss"] = total.to(types[t.objective]["loss"]);
  return outs;
}

}  // namespace umrflow
