// load_graph: a graph and everything its run will use, validated up front.
#include <filesystem>

#include "umrflow/graph.h"
#include "umrflow/archive_check.h"
#include "umrflow/plugin.h"
#include "umrflow/registry.h"

namespace umrflow {

namespace fs = std::filesystem;

namespace {

/// Where `path` (a chain of map keys) is written in `doc`, or `fallback`.
Location location_of(const Doc& doc, const std::vector<std::string>& path, const Location& fallback) {
  const Doc* d = &doc;
  for (const auto& key : path) {
    d = d->is_map() ? d->find(key) : nullptr;
    if (!d) return fallback;
  }
  return d->where();
}

void append(Diagnostics& to, const Diagnostics& from) {
  for (const auto& d : from.items()) to.error(d.where, d.message);
}

/// Loads `doc`'s plugins; each failure is a diagnostic at its entry.
void load_plugins(const Doc& doc, Registry& registry, Diagnostics& diags) {
  std::vector<PluginRef> refs;
  try {
    refs = plugin_refs(doc);
  } catch (const GraphError& e) {
    append(diags, e.diagnostics());
  }
  for (const auto& r : refs) {
    if (!fs::exists(r.path)) {
      diags.error(r.where, "plugin '" + r.path + "' does not exist (build it, or fix the path; relative paths start at the file that names them)");
      continue;
    }
    try {
      load_plugin(r.path, registry);
    } catch (const std::exception& e) {
      diags.error(r.where, e.what());
    }
  }
}

/// A document read and built, its problems added to `diags`; nullptr on failure.
std::unique_ptr<Graph> build(const std::string& file, const std::vector<std::string>& overrides, Registry& registry,
                             Diagnostics& diags) {
  try {
    const Doc doc = load_graph_doc(file, overrides);
    Diagnostics plugin_problems;
    load_plugins(doc, registry, plugin_problems);
    append(diags, plugin_problems);
    if (!plugin_problems.empty()) return nullptr;  // its node types would only add noise
    return std::make_unique<Graph>(build_graph(doc, file, registry));
  } catch (const GraphError& e) {
    append(diags, e.diagnostics());
  }
  return nullptr;
}

bool matches(const std::string& pattern, const std::string& key) {
  if (pattern.empty() || pattern.back() != '*') return pattern == key;
  return key.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
}

/// "" when `metric` names a scalar `graph` produces, else why not.
std::string metric_problem(const Graph& graph, const std::string& metric) {
  const auto dot = metric.find('.');
  const std::string id = metric.substr(0, dot), key = dot == std::string::npos ? "loss" : metric.substr(dot + 1);
  const NodeDecl* n = graph.find(id);
  std::vector<std::string> names;
  for (const auto& s : graph.step) {
    for (const auto& [k, rank] : s.provides)
      if (rank == 0 || rank == -1) names.push_back(k == "loss" ? s.id : s.id + "." + k);
    if (s.spec)
      for (const auto& f : s.spec->figures) names.push_back(s.id + "." + f.key);
  }
  std::string have;
  for (const auto& x : names) have += (have.empty() ? "" : ", ") + x;
  const std::string listing = " (it produces: " + (have.empty() ? std::string("no scalar") : have) + ")";
  if (!n || n->section != NodeDecl::Section::step)
    return "names no step node of the validation graph" + did_you_mean(metric, names) + listing;
  if (auto it = n->provides.find(key); it != n->provides.end()) {
    if (it->second == 0 || it->second == -1) return "";
    return "names '" + key + "' of rank " + std::to_string(it->second) + ", not a scalar" + listing;
  }
  if (n->spec)
    for (const auto& f : n->spec->figures)
      if (matches(f.key, key)) return "";
  return "is not a scalar of node '" + id + "'" + did_you_mean(metric, names) + listing;
}

}  // namespace

std::set<std::string> checkpoints_written(const Graph& graph) {
  std::set<std::string> out;
  if (!graph.train.enabled) return out;
  const fs::path dir = fs::path("runs") / graph.name;
  for (const char* name : {"last.pt", "best.pt"}) out.insert((dir / name).lexically_normal().string());
  for (std::int64_t e = 1; e <= graph.train.epochs; ++e) {
    char name[32];
    std::snprintf(name, sizeof name, "epoch_%04lld.pt", static_cast<long long>(e));
    out.insert((dir / name).lexically_normal().string());
  }
  return out;
}

Graph load_graph(const std::string& file, const std::vector<std::string>& overrides, Registry& registry,
                 const LoadChecks& checks) {
  Diagnostics diags;
  std::unique_ptr<Graph> g = build(file, overrides, registry, diags);
  if (!g) {
    diags.throw_if_any();
    throw std::logic_error("load_graph: no graph and no diagnostic");
  }
  const Location top = g->resolved.where().line ? g->resolved.where() : Location{file, 1, 1};
  for (const auto& m : g->modules)
    if (checks.init_exists && m.has_init && !fs::exists(m.init.from) && !checks.produced.count(m.init.from))
      diags.error(location_of(g->resolved, {"modules", m.id, "init", "from"}, m.where),
                  "module '" + m.id + "': init checkpoint '" + m.init.from +
                      "' does not exist (run the stage that writes it first, or validate the stages together: "
                      "`umrflow validate STAGE1.yaml STAGE2.yaml ...`)");
  for (const auto& m : g->modules) {
    if (!checks.init_intact || !m.has_init || !fs::exists(m.init.from)) continue;
    try {
      check_weights_file(m.init.from, m.id);
    } catch (const std::exception& e) {
      diags.error(location_of(g->resolved, {"modules", m.id, "init", "from"}, m.where), "module '" + m.id + "': init.from: " + e.what());
    }
  }
  if (!g->train.validate_graph.empty() && fs::exists(g->train.validate_graph)) {
    const Location at = location_of(g->resolved, {"train", "validate", "graph"}, top);
    Diagnostics inner;
    std::unique_ptr<Graph> v = build(g->train.validate_graph, g->train.validate_set, registry, inner);
    if (!inner.empty()) {
      diags.error(at, "train.validate.graph '" + g->train.validate_graph + "' does not validate (" +
                          std::to_string(inner.size()) + " problem(s) follow)");
      append(diags, inner);
    } else if (const std::string why = metric_problem(*v, g->train.validate_metric); !why.empty()) {
      diags.error(location_of(g->resolved, {"train", "validate", "metric"}, at),
                  "train.validate.metric '" + g->train.validate_metric + "' " + why);
    }
    if (v) g->validation = std::shared_ptr<const Graph>(std::move(v));
  }
  diags.throw_if_any();
  return std::move(*g);
}

}  // namespace umrflow
