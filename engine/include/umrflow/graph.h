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
#include <memory>
#include <set>
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
  /// `call` nodes, resolved when the graph is built: the module called and
  /// the modules applied after it (`then`), by id.
  std::string module;
  std::vector<std::string> then;
  /// The input ports: the spec's, or for `call` the called module's; nullptr
  /// when they are unknown (an unknown type or module, already reported).
  const std::vector<PortSpec>* ports = nullptr;
  bool frozen = false;  // modules only
  bool has_init = false;
  ModuleInit init;
  Location where;
  /// Keys and ranks this node's output provides (known after validation).
  std::map<std::string, int> provides;

  bool is(NodeKind kind) const { return spec && spec->kind == kind; }
};

// Settings sections. Their keys are declared once in graph.cpp (name, type,
// default, range, description: settings_sections()), bound to these members;
// build_graph fills every member from the file or the declared default, so the
// initialisers below are placeholders, never defaults.

/// `execution:` how a graph runs, valid in every graph (training or not).
struct ExecutionSettings {
  std::string device;         // "cpu", "cuda" or "auto"
  std::int64_t prefetch = 0;  // most samples in flight on the data plane
  std::int64_t threads = 0;   // data-plane worker threads; 0: all cores
  std::string autocast;       // "bf16": autocast of the step plane's forward passes when training (CUDA or CPU)
  bool channels_last = false;  // rank-5 weights and batch tensors in channels-last-3D memory order
  bool own_kernels = true;     // umrflow's own CPU kernels where nodes have them (umrflow/own_kernels.h)
  std::int64_t log_every = 0;  // training steps between loss checks and shown values (each one waits for the device)
  bool sync_bn = false;        // multi-process training: BatchNorm statistics over every rank's rows (umrflow/rank_sync.h)
  double bucket_mb = 0;        // multi-process training: gradient bucket size; 0: one bucket
};

/// `train:` what training does; its presence switches training on.
struct TrainSettings {
  bool enabled = false;  // a `train:` section is present
  std::int64_t epochs = 0;
  std::string objective;  // step node whose `loss` is minimised
  std::string optimizer;  // `optimizer.type`
  double lr = 0, weight_decay = 0, momentum = 0;
  std::int64_t checkpoint_every = 0;
  /// Learning-rate schedule, stepped once per epoch: "constant", or
  /// "warmup_cosine" (linear from warmup_start_lr to lr over warmup_epochs,
  /// then cosine down to min_lr at the last epoch; the released schedule).
  std::string schedule;
  std::int64_t warmup_epochs = 0;
  double warmup_start_lr = 0, min_lr = 0;
  /// `validate:`: every `validate_every` epochs (and after the last) the graph
  /// `validate_graph` (resolved path, with `validate_set` overrides) runs once
  /// without gradient on copies of the current module weights; the epoch mean
  /// of its scalar `validate_metric` ("node.key") decides best.pt.
  std::string validate_graph;
  std::vector<std::string> validate_set;
  std::int64_t validate_every = 0;
  std::string validate_metric;
  std::string validate_mode;  // "max" or "min"
  bool validate_maximise() const { return validate_mode != "min"; }
  /// `accumulate:` one backward pass per group of rows, one optimizer step per
  /// batch (the released stage-3 trainer; peak memory of one group). The
  /// int64 tensor `accumulate_groups` ("NODE.KEY") labels entries 0 (not
  /// split) or g > 0; each `accumulate_slice` tensor has k rows per non-zero
  /// label, in label order. Pass g gives the nodes that depend on them
  /// (`accumulate_dependent`, in step order) the rows of group g, and in place
  /// of the labels those equal to g; the other step nodes run once, and reach
  /// the dependent ones detached. Off when `accumulate_groups` is empty.
  std::string accumulate_groups;
  std::vector<std::string> accumulate_slice;
  std::vector<std::string> accumulate_dependent;  // filled by build_graph
};

struct Graph {
  std::string file;  // top-level graph file
  std::string name;
  std::uint64_t seed = 0;
  std::vector<std::string> plugins;  // as resolved paths
  std::vector<NodeDecl> modules, data, step;  // data in chain order, step in topological order
  ExecutionSettings execution;
  TrainSettings train;
  Doc resolved;  // the merged document with overrides applied
  /// The validation graph (train.validate.graph with train.validate.set),
  /// built and checked by load_graph before anything runs; null otherwise.
  std::shared_ptr<const Graph> validation;

  const NodeDecl* find(const std::string& id) const;
  const NodeDecl& source() const { return data.front(); }
  const NodeDecl& batch() const { return data.back(); }
};

/// A `plugins:` entry: the resolved path and where the file names it.
struct PluginRef {
  std::string path;
  Location where;
};
std::vector<PluginRef> plugin_refs(const Doc& doc);

/// The `plugins:` list of a document, resolved against the graph file's folder.
/// Needed before build_graph so plugin node types are known during validation.
std::vector<std::string> plugin_list(const Doc& doc, const std::string& graph_file);

/// Whether `id` can name a node or module: a letter or '_', then letters,
/// digits, '_' and '-'.
bool is_valid_id(const std::string& id);

/// Validates `doc` against `registry`. Throws GraphError with every problem.
Graph build_graph(const Doc& doc, const std::string& graph_file, const Registry& registry);

/// What `umrflow run` and `umrflow validate` call: everything a run will use,
/// checked before the first sample is read, every problem in one GraphError
/// with file:line:column:
///   * the document with `overrides`, the `plugins:` it names loaded into
///     `registry` (a missing or refused library reported at its entry), then
///     build_graph;
///   * every module's `init.from` exists, or is one of `checks.produced`
///     (checkpoints that earlier graphs of the same `umrflow validate` write);
///   * the validation graph and its plugins, built the same way (its modules
///     take the trained weights, so its init.from is not checked), and
///     train.validate.metric names a scalar it produces: a rank-0 output of a
///     step node (`NODE` alone for a `loss`) or a declared summary figure.
struct LoadChecks {
  bool init_exists = true;           // false for `umrflow dot` and `bench`, which load no weights
  bool init_intact = false;          // `umrflow validate`: an init.from that exists is read whole, as a run
                                     // would before loading it (check_weights_file, archive_check.h)
  std::set<std::string> produced;    // init.from paths that count as present
};
Graph load_graph(const std::string& file, const std::vector<std::string>& overrides, Registry& registry,
                 const LoadChecks& checks = {});

/// The checkpoints a run of `graph` writes into its default run directory
/// (runs/<name>/last.pt, best.pt and epoch_NNNN.pt), for LoadChecks::produced.
std::set<std::string> checkpoints_written(const Graph& graph);

/// The declarations of the settings sections, in document order, for docs:
/// ("execution", ...), ("train", ...), ("train.optimizer", ...), ...
std::vector<std::pair<std::string, std::vector<ParamSpec>>> settings_sections();

/// The graph as Graphviz: data plane and step plane as clusters, modules as
/// ellipses, edges labelled with the key they carry.
std::string graph_to_dot(const Graph& graph);

}  // namespace umrflow
