// umrflow/graph.h: a graph file, validated.
//
// build_graph() turns a loaded Doc (doc.h) into a Graph, checking everything
// that can be checked without reading data, and reports every problem at once
// as a GraphError whose diagnostics each carry file:line:column:
//   * unknown keys at any level and unknown node types, with the nearest names;
//   * parameter types, ranges, choices and missing required parameters;
//   * duplicate ids, missing inputs, inputs naming no node (with the nearest
//     ids), inputs that cross planes the wrong way, cycles;
//   * every edge against the ports: a key the consumer needs that its producer
//     does not provide, or provides with another rank;
//   * the shape of the data plane: one source, a chain of sample nodes, one
//     `batch` node at the end;
//   * a frozen module without initial weights, a `call` of an unknown module,
//     a training objective that is not a step node.
//
// The schema is documented in docs/graph-yaml.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "umrflow/doc.h"
#include "umrflow/node_spec.h"
#include "umrflow/params.h"

namespace umrflow {

class Registry;

/// One entry of a node's `in:` after binding to the consumer's ports.
struct InputRef {
  std::string node;  // producer id
  std::string key;   // a single key of the producer's packet, or "" for all of it
  std::string port;  // consumer port it is bound to
  Location where;
  std::string str() const { return key.empty() ? node : node + "." + key; }
};

struct ModuleInit {
  std::string from;  // checkpoint path, relative to the working directory
  std::string prefix;  // module id in that checkpoint (default: same id)
  std::vector<std::string> include = {"*"}, exclude;  // glob patterns over parameter names
};

struct NodeDecl {
  enum class Section { modules, data, step };
  std::string id;
  std::string type;
  Section section = Section::data;
  const NodeSpec* spec = nullptr;
  Params params;
  std::vector<InputRef> inputs;
  std::string module;  // for `call` nodes: the module called
  bool frozen = false;  // modules only
  bool has_init = false;
  ModuleInit init;
  Location where;
  /// Keys and ranks this node's output provides (known after validation).
  std::map<std::string, int> provides;
};

/// `train:` settings (declared as ParamSpecs in graph.cpp, listed by docs).
struct TrainSettings {
  bool enabled = false;  // a `train:` section is present
  std::int64_t epochs = 1;
  std::string objective;  // step node whose `loss` is minimised
  std::string optimizer = "adamw";
  double lr = 1e-3, weight_decay = 0.0, momentum = 0.9;
  std::int64_t checkpoint_every = 1;
  /// Learning-rate schedule, stepped once per epoch: "constant", or
  /// "warmup_cosine" (linear from warmup_start_lr to lr over warmup_epochs,
  /// then cosine down to min_lr at the last epoch; the released schedule).
  std::string schedule = "constant";
  std::int64_t warmup_epochs = 0;
  double warmup_start_lr = 0.0, min_lr = 0.0;
  /// `validate:`: every `validate_every` epochs (and after the last) the graph
  /// `validate_graph` (resolved path, with `validate_set` overrides) runs once
  /// without gradient on copies of the current module weights; the epoch mean
  /// of its scalar `validate_metric` ("node.key") decides best.pt.
  std::string validate_graph;
  std::vector<std::string> validate_set;
  std::int64_t validate_every = 1;
  std::string validate_metric;
  bool validate_maximise = true;
  std::int64_t prefetch = 8;
  std::string autocast = "none";  // "bf16": CUDA autocast of the step plane's forward (ignored on CPU)
  std::int64_t threads = 0;  // 0: all cores
};

struct Graph {
  std::string file;  // top-level graph file
  std::string name;
  std::uint64_t seed = 0;
  std::string device = "cpu";
  std::vector<std::string> plugins;  // as resolved paths
  std::vector<NodeDecl> modules, data, step;  // data in chain order, step in topological order
  TrainSettings train;
  Doc resolved;  // the merged document with overrides applied

  const NodeDecl* find(const std::string& id) const;
  const NodeDecl& source() const { return data.front(); }
  const NodeDecl& batch() const { return data.back(); }
};

/// The `plugins:` list of a document, resolved against the graph file's folder.
/// Needed before build_graph so plugin node types are known during validation.
std::vector<std::string> plugin_list(const Doc& doc, const std::string& graph_file);

/// Validates `doc` against `registry`. Throws GraphError with every problem.
Graph build_graph(const Doc& doc, const std::string& graph_file, const Registry& registry);

/// Parameter declarations of the `train:` section and the top-level keys, for
/// docs and tests.
const std::vector<ParamSpec>& train_param_specs();

/// The graph as Graphviz: data plane and step plane as clusters, modules as
/// ellipses, edges labelled with the key they carry.
std::string graph_to_dot(const Graph& graph);

}  // namespace umrflow
