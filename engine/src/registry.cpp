#include "umrflow/registry.h"

#include <algorithm>
#include <stdexcept>

namespace umrflow {

const char* node_kind_name(NodeKind kind) {
  switch (kind) {
    case NodeKind::source: return "source";
    case NodeKind::sample: return "sample";
    case NodeKind::step: return "step";
    case NodeKind::module: return "module";
    case NodeKind::batch: return "batch";
    case NodeKind::call: return "call";
  }
  return "?";
}

void Registry::add(NodeSpec spec) {
  const std::string where = " (registering from " + current_origin_ + ")";
  if (spec.type.empty()) throw std::invalid_argument("a node type needs a name" + where);
  const bool engine_kind = spec.kind == NodeKind::batch || spec.kind == NodeKind::call;
  if (engine_kind && current_origin_ != "built-in")
    throw std::invalid_argument("node type '" + spec.type + "': only the engine declares batch and call nodes" + where);
  if (!spec.create && !engine_kind)
    throw std::invalid_argument("node type '" + spec.type + "' has no factory" + where);
  if (auto it = specs_.find(spec.type); it != specs_.end())
    throw std::invalid_argument("node type '" + spec.type + "' is registered twice: by " + origins_[spec.type] +
                                " and by " + current_origin_);
  for (std::size_t i = 0; i + 1 < spec.inputs.size(); ++i)
    if (spec.inputs[i].variadic)
      throw std::invalid_argument("node type '" + spec.type + "': only the last port may be variadic" + where);
  if (spec.kind == NodeKind::sample && spec.inputs.size() != 1)
    throw std::invalid_argument("node type '" + spec.type + "': a sample node has exactly one input port" + where);
  if (spec.kind == NodeKind::source && !spec.inputs.empty())
    throw std::invalid_argument("node type '" + spec.type + "': a source node has no input ports" + where);
  for (const auto& p : spec.params) {
    if (!p.default_value) continue;
    const ParamValue& v = *p.default_value;
    auto bad = [&](double x) { return (p.minimum && x < *p.minimum) || (p.maximum && x > *p.maximum); };
    bool out = false;
    if (auto* i = std::get_if<std::int64_t>(&v)) out = bad(static_cast<double>(*i));
    if (auto* d = std::get_if<double>(&v)) out = bad(*d);
    if (auto* l = std::get_if<std::vector<std::int64_t>>(&v))
      for (auto x : *l) out = out || bad(static_cast<double>(x));
    if (auto* l = std::get_if<std::vector<double>>(&v))
      for (auto x : *l) out = out || bad(x);
    if (out)
      throw std::invalid_argument("node type '" + spec.type + "': default of '" + p.name + "' is outside " +
                                  p.constraint_text() + where);
  }
  origins_[spec.type] = current_origin_;
  std::string name = spec.type;
  specs_.emplace(std::move(name), std::move(spec));
}

void Registry::add_verb(VerbSpec verb) {
  std::string name;
  for (const auto& w : verb.path) name += (name.empty() ? "" : " ") + w;
  const std::string where = " (registering from " + current_origin_ + ")";
  if (verb.path.empty() || verb.path.size() > 2) throw std::invalid_argument("a verb has a path of one or two words" + where);
  if (!verb.run) throw std::invalid_argument("verb '" + name + "' has no run function" + where);
  for (std::size_t i = 0; i < verbs_.size(); ++i) {
    const auto& other = verbs_[i].path;
    const bool clash = other == verb.path || (other.size() != verb.path.size() && other.front() == verb.path.front() &&
                                              (other.size() == 1 || verb.path.size() == 1));
    if (clash)
      throw std::invalid_argument("verb '" + name + "' clashes with the verb registered by " + verb_origins_[i] + where);
  }
  auto declared = [&](const std::string& n) {
    return std::any_of(verb.options.begin(), verb.options.end(), [&](const ParamSpec& p) { return p.name == n; });
  };
  for (const auto* list : {&verb.positional, &verb.comma_lists, &verb.existing_files, &verb.output_files, &verb.output_folders})
    for (const auto& n : *list)
      if (!declared(n)) throw std::invalid_argument("verb '" + name + "' names option '" + n + "', which it does not declare" + where);
  for (const auto& [n, alias] : verb.short_names)
    if (!declared(n)) throw std::invalid_argument("verb '" + name + "' names option '" + n + "', which it does not declare" + where);
  verbs_.push_back(std::move(verb));
  verb_origins_.push_back(current_origin_);
}

const NodeSpec* Registry::find(const std::string& type) const {
  auto it = specs_.find(type);
  return it == specs_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::types() const {
  std::vector<std::string> out;
  for (const auto& [name, spec] : specs_) out.push_back(name);
  return out;
}

std::string Registry::origin(const std::string& type) const {
  auto it = origins_.find(type);
  return it == origins_.end() ? "" : it->second;
}

void register_engine_nodes(Registry& registry) {
  NodeSpec batch;
  batch.type = "batch";
  batch.kind = NodeKind::batch;
  batch.summary = "Ends the data plane: stacks samples key by key along a new leading axis (ranks grow by one).";
  batch.params = {
      param::integer("size", 1, "samples per batch").min(1),
      param::boolean("drop_last", false, "drop the last batch of an epoch when it is smaller than size"),
  };
  batch.inputs = {PortSpec{"in", {}, "samples, in epoch order"}};
  registry.add(std::move(batch));

  NodeSpec call;
  call.type = "call";
  call.kind = NodeKind::call;
  call.summary = "Calls a module declared under `modules:`; its ports and outputs are the module's.";
  call.params = {
      param::text("module", std::nullopt, "id of the module to call"),
      param::boolean("grad", true, "false: no autograd for this call (a fixed reference, a key encoder)"),
      param::boolean("eval", false, "run the module in eval mode for this call (BatchNorm uses running statistics)"),
      param::integers("window", std::vector<std::int64_t>{}, "sliding-window inference: window size over the trailing axes; empty: whole input").min(1),
      param::number("overlap", 0.5, "sliding-window overlap (uniform blending of the outputs)").range(0.0, 0.99),
      param::integer("window_batch", 1,
                     "windows run through the module at once (faster on a GPU): each input row is followed by its windows "
                     "along axis 0, so rows that belong together stay together; the result equals one window at a time up to rounding")
          .min(1),
      param::texts("then", std::vector<std::string>{},
                   "modules applied after `module`, each to the previous one's output as its first port (an encoder, then "
                   "a decoder); the call's outputs are the last one's, and a `window` covers the whole chain"),
  };
  registry.add(std::move(call));
}

}  // namespace umrflow
